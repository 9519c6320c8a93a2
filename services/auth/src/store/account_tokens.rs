//! Tokens sent by e-mail (`account_tokens`, hashes only) and the per-address count of
//! password-reset requests (`password_reset_requests`).

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{AccountTokenHash, TokenPurpose};

/// Store a token issued to `user_id` at `email`.
#[tracing::instrument(name = "db account_tokens.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    hash: AccountTokenHash,
    user_id: Uuid,
    purpose: TokenPurpose,
    email: &str,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash.0.as_slice())
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(email)
    .bind(expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// Store a reset token for the enabled account at `email`, if there is one and `allowed`; returns
/// its user. One statement whether or not the address is known (see `recovery::forgot`).
#[tracing::instrument(name = "db account_tokens.insert_reset_for", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_reset_for(
    db: impl PgExecutor<'_>,
    hash: AccountTokenHash,
    email: &str,
    allowed: bool,
    expires_at: OffsetDateTime,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
         SELECT $1, id, $2, email, $5 FROM users WHERE email = $3 AND NOT disabled AND $4
         RETURNING user_id",
    )
    .bind(hash.0.as_slice())
    .bind(TokenPurpose::ResetPassword.as_str())
    .bind(email)
    .bind(allowed)
    .bind(expires_at)
    .fetch_optional(db)
    .await
}

/// A token that can still be used: issued for `purpose`, unused, unexpired.
#[derive(Debug, Clone, FromRow)]
pub struct LiveToken {
    pub user_id: Uuid,
    pub email: String,
}

/// The live token of this hash and purpose, without spending it.
#[tracing::instrument(name = "db account_tokens.live", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn live(
    db: impl PgExecutor<'_>,
    hash: AccountTokenHash,
    purpose: TokenPurpose,
) -> Result<Option<LiveToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, email FROM account_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(hash.0.as_slice())
    .bind(purpose.as_str())
    .fetch_optional(db)
    .await
}

/// Spend the live token of this hash and purpose; `None` when there is none (unknown, used,
/// expired, or of another purpose). Of two concurrent uses, one gets it.
#[tracing::instrument(name = "db account_tokens.spend", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn spend(
    db: impl PgExecutor<'_>,
    hash: AccountTokenHash,
    purpose: TokenPurpose,
) -> Result<Option<LiveToken>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE account_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id, email",
    )
    .bind(hash.0.as_slice())
    .bind(purpose.as_str())
    .fetch_optional(db)
    .await
}

/// Spend every live token of `user_id` for `purpose` (a new password kills older reset links).
#[tracing::instrument(name = "db account_tokens.spend_all", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn spend_all(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    purpose: TokenPurpose,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = now()
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Count a reset request for `email` (known or not) in its hourly window; returns whether it is
/// within `per_hour`.
#[tracing::instrument(name = "db account_tokens.count_reset_request", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn count_reset_request(
    db: impl PgExecutor<'_>,
    email: &str,
    per_hour: u32,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO password_reset_requests AS r (email, requests) VALUES ($1, 1)
         ON CONFLICT (email) DO UPDATE SET
             requests = CASE WHEN r.window_start > now() - interval '1 hour'
                             THEN r.requests + 1 ELSE 1 END,
             window_start = CASE WHEN r.window_start > now() - interval '1 hour'
                                 THEN r.window_start ELSE now() END
         RETURNING requests <= $2",
    )
    .bind(email)
    .bind(i32::try_from(per_hour).unwrap_or(i32::MAX))
    .fetch_one(db)
    .await
}

/// Delete tokens expired longer than `keep` before `now` (used ones expire too), and reset
/// counters whose window ended that long ago, in batches.
#[tracing::instrument(name = "db account_tokens.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(
    db: &sqlx::PgPool,
    now: OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - keep;
    let tokens = platform::db::delete_before(
        db,
        platform::db::Aged {
            table: "account_tokens",
            key: "token_hash",
            at: "expires_at",
        },
        cutoff,
    )
    .await?;
    // A counter's window is an hour: it ended `keep` ago when it started `keep` + 1 h ago.
    let counters = platform::db::delete_before(
        db,
        platform::db::Aged {
            table: "password_reset_requests",
            key: "email",
            at: "window_start",
        },
        cutoff - time::Duration::hours(1),
    )
    .await?;
    Ok(tokens + counters)
}
