use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::RefreshTokenHash;

/// A new session with its first refresh token, in one statement.
#[tracing::instrument(name = "db sessions.create", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn create(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    expires_at: OffsetDateTime,
    first_token: RefreshTokenHash,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "WITH s AS (
             INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3) RETURNING id
         )
         INSERT INTO refresh_tokens (token_hash, session_id) SELECT $4, id FROM s
         RETURNING session_id",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(expires_at)
    .bind(first_token.0.as_slice())
    .fetch_one(db)
    .await
}

#[tracing::instrument(name = "db sessions.add_refresh_token", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn add_refresh_token(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    hash: RefreshTokenHash,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash.0.as_slice())
        .bind(session_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// A presented refresh token with its session and user, locked for the rotation.
#[derive(Debug, Clone, FromRow)]
pub struct PresentedToken {
    pub session_id: Uuid,
    pub used_at: Option<OffsetDateTime>,
    pub session_created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub email_verified: bool,
}

/// Look a token up and lock its row, so two concurrent uses of one token are serialised: the
/// second sees it used (and is treated as reuse).
#[tracing::instrument(name = "db sessions.presented_for_update", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn presented_for_update(
    db: impl PgExecutor<'_>,
    hash: RefreshTokenHash,
) -> Result<Option<PresentedToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.session_id, t.used_at, s.created_at AS session_created_at, s.expires_at,
                s.revoked_at, u.id AS user_id, u.email, u.role, u.disabled,
                u.email_verified_at IS NOT NULL AS email_verified
         FROM refresh_tokens t
         JOIN sessions s ON s.id = t.session_id
         JOIN users u ON u.id = s.user_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t",
    )
    .bind(hash.0.as_slice())
    .fetch_optional(db)
    .await
}

#[tracing::instrument(name = "db sessions.mark_used", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_used(db: impl PgExecutor<'_>, hash: RefreshTokenHash) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash.0.as_slice())
        .execute(db)
        .await
        .map(|_| ())
}

#[tracing::instrument(name = "db sessions.extend", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn extend(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET expires_at = $2 WHERE id = $1")
        .bind(session_id)
        .bind(expires_at)
        .execute(db)
        .await
        .map(|_| ())
}

/// Revoke one session (idempotent). Returns its user when the session exists.
#[tracing::instrument(name = "db sessions.revoke", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn revoke(
    db: impl PgExecutor<'_>,
    session_id: Uuid,
    reason: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()),
                             revoked_reason = coalesce(revoked_reason, $2)
         WHERE id = $1
         RETURNING user_id",
    )
    .bind(session_id)
    .bind(reason)
    .fetch_optional(db)
    .await
}

/// Revoke every live session of a user; returns their ids.
#[tracing::instrument(name = "db sessions.revoke_all", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn revoke_all(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL
         RETURNING id",
    )
    .bind(user_id)
    .bind(reason)
    .fetch_all(db)
    .await
}

/// Revoke every live session of a user but `keep` (a password change keeps the caller's);
/// returns their ids.
#[tracing::instrument(name = "db sessions.revoke_all_except", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn revoke_all_except(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    keep: Uuid,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL
         RETURNING id",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .fetch_all(db)
    .await
}

/// The session a refresh token belongs to, whatever its state.
#[tracing::instrument(name = "db sessions.session_of", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn session_of(
    db: impl PgExecutor<'_>,
    hash: RefreshTokenHash,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash.0.as_slice())
        .fetch_optional(db)
        .await
}

/// Delete sessions that expired, or were revoked, longer than `keep` before `now` (their refresh
/// tokens with them), in batches.
#[tracing::instrument(name = "db sessions.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(
    db: &sqlx::PgPool,
    now: OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - keep;
    platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM sessions WHERE id IN (
                 SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .await
}

/// Sessions of a user revoked within `window` (their access tokens may still be unexpired).
#[tracing::instrument(name = "db sessions.recently_revoked", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn recently_revoked(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    window: time::Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at > now() - $2::interval",
    )
    .bind(user_id)
    .bind(window)
    .fetch_all(db)
    .await
}
