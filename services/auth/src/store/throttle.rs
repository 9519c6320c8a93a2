//! Failed-login counters: per (email, client address), which block that address, and per email,
//! which only slow every attempt down (see the migration `login_throttle_per_address`). Both are
//! keyed by the normalised email whether or not an account exists. The client address is
//! [`platform::ratelimit::client_key`]: an IPv4 address, or an IPv6 address's /64, so rotating
//! through one's own /64 does not reset the block.
//!
//! The pairs live in `login_throttle_pairs`; `login_throttle` is the previous release's per-email
//! counter, kept (and only purged here) until a later release drops it (docs/operations.md).

use std::net::IpAddr;

use sqlx::PgExecutor;

/// The email's failures count towards its slow-down until this long after the last one.
pub const ACCOUNT_WINDOW_SQL: &str = "interval '15 minutes'";

/// Count a failure of `client` at `email`, in one statement for both counters. From the
/// `max_failures`-th failure of the pair on, each one locks the pair for 2^(failures - max)
/// seconds, at most 15 minutes; the email's count restarts after 15 minutes without failures.
#[tracing::instrument(name = "db throttle.record_failure", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn record_failure(
    db: impl PgExecutor<'_>,
    email: &str,
    client: IpAddr,
    max_failures: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH pair AS (
             INSERT INTO login_throttle_pairs AS t (email, client, failures, locked_until)
             VALUES ($1, $2::inet, 1, CASE WHEN $3 <= 1 THEN now() + interval '1 second' END)
             ON CONFLICT (email, client) DO UPDATE SET
                 failures = t.failures + 1,
                 updated_at = now(),
                 locked_until = CASE WHEN t.failures + 1 >= $3 THEN now() + least(
                     interval '15 minutes',
                     make_interval(secs => power(2.0, least(t.failures + 1 - $3, 10))::float8))
                 END
             RETURNING 1
         )
         INSERT INTO login_account_failures AS a (email, failures) VALUES ($1, 1)
         ON CONFLICT (email) DO UPDATE SET
             failures = CASE WHEN a.updated_at < now() - {ACCOUNT_WINDOW_SQL} THEN 1
                             ELSE a.failures + 1 END,
             updated_at = now()"
    )))
    .bind(email)
    .bind(platform::ratelimit::client_key(client))
    .bind(i32::try_from(max_failures).unwrap_or(i32::MAX))
    .execute(db)
    .await
    .map(|_| ())
}

/// A successful login clears its pair's counter. The email's counter is left to fade: an attacker
/// elsewhere may still be at work, and the owner's login should not hand them a fresh allowance.
#[tracing::instrument(name = "db throttle.clear", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn clear(
    db: impl PgExecutor<'_>,
    email: &str,
    client: IpAddr,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle_pairs WHERE email = $1 AND client = $2::inet")
        .bind(email)
        .bind(platform::ratelimit::client_key(client))
        .execute(db)
        .await
        .map(|_| ())
}

/// Forget counters idle (no failure) for longer than `keep` before `now`, in batches: pair
/// counters never while their lock runs, email counters never inside their window.
#[tracing::instrument(name = "db throttle.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(
    db: &sqlx::PgPool,
    now: time::OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - keep;
    let pairs = platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM login_throttle_pairs WHERE (email, client) IN (
                 SELECT email, client FROM login_throttle_pairs
                 WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until <= $2)
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(cutoff)
        .bind(now)
        .bind(batch)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    let accounts = platform::db::delete_in_batches(|batch| async move {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM login_account_failures WHERE email IN (
                 SELECT email FROM login_account_failures
                 WHERE updated_at < least($1, $2 - {ACCOUNT_WINDOW_SQL})
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)"
        )))
        .bind(cutoff)
        .bind(now)
        .bind(batch)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    // The previous release's per-email counters (written only by its pods during a rolling
    // upgrade or after a rollback), under the same rule as the pairs. Dropped with the table.
    let legacy = platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM login_throttle WHERE email IN (
                 SELECT email FROM login_throttle
                 WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until <= $2)
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(cutoff)
        .bind(now)
        .bind(batch)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .await?;
    Ok(pairs + accounts + legacy)
}
