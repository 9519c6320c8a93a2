//! SQL of the catalog database. Routes map these rows to response DTOs.

pub mod categories;
pub mod customers;
pub mod idempotency;
pub mod images;
pub mod items;
pub mod jobs;
pub mod orders;

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
