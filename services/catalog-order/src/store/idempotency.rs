//! `Idempotency-Key`: claimed inside the transaction of the request it protects, so the key and
//! the effect commit (or roll back) together. A second request with the same key waits on the
//! first one's row lock, then sees its stored answer.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::StoreError;

/// A key replays its answer this long; after that the same key is a new request.
pub const TTL_HOURS: i32 = 24;
/// [`TTL_HOURS`] as a duration: no purge deletes a key younger than this.
pub const REPLAY_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(TTL_HOURS as u64 * 3600);

pub enum Claim {
    /// First use: go on, and `complete` the key before committing.
    New,
    /// Seen before with the same request: answer this again.
    Replay { status: u16, body: Vec<u8> },
    /// Seen before with another request body.
    Mismatch,
}

#[tracing::instrument(name = "db idempotency.claim", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn claim(
    tx: &mut PgConnection,
    user_id: Uuid,
    key: &str,
    request_hash: &[u8],
) -> Result<Claim, StoreError> {
    // An expired key is free again.
    sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE user_id = $1 AND key = $2 AND created_at < now() - make_interval(hours => $3)",
    )
    .bind(user_id)
    .bind(key)
    .bind(TTL_HOURS)
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let (stored_hash, status, body): (Vec<u8>, Option<i32>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, status_code, response_body FROM idempotency_keys
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        }),
        // A committed key always has its answer; treat anything else as another body.
        _ => Ok(Claim::Mismatch),
    }
}

#[tracing::instrument(name = "db idempotency.complete", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn complete(
    tx: &mut PgConnection,
    user_id: Uuid,
    key: &str,
    status: u16,
    body: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $3, response_body = $4
         WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .execute(&mut *tx)
    .await
    .map(|_| ())
    .map_err(StoreError::from)
}

/// Forget keys created longer than `keep` before `now` (maintenance), in batches; never one still
/// inside its replay window ([`TTL_HOURS`]), whatever `keep` is.
#[tracing::instrument(name = "db idempotency.purge_expired", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge_expired(
    db: &sqlx::PgPool,
    now: time::OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - keep.max(REPLAY_WINDOW);
    platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE (user_id, key) IN (
                 SELECT user_id, key FROM idempotency_keys WHERE created_at < $1
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

/// Forget every key of a user (their account was deleted; the stored answers are theirs).
#[tracing::instrument(name = "db idempotency.forget_user", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn forget_user(
    db: impl sqlx::PgExecutor<'_>,
    user_id: uuid::Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await
        .map(|_| ())
}
