//! SQL of the auth database. Handlers never see these rows; routes map them to DTOs.

pub mod account_tokens;
pub mod outbox;
pub mod sessions;
pub mod throttle;
pub mod users;

/// Whether an error is a unique-constraint violation (the row already exists).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
