//! Failed-login counters: per (email, client address), which block that address, and per email,
//! which only slow every attempt down (see the migration `login_throttle_per_address`). Both are
//! keyed by the normalised email whether or not an account exists.

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
             INSERT INTO login_throttle AS t (email, client, failures, locked_until)
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
    .bind(client.to_string())
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
    sqlx::query("DELETE FROM login_throttle WHERE email = $1 AND client = $2::inet")
        .bind(email)
        .bind(client.to_string())
        .execute(db)
        .await
        .map(|_| ())
}

/// Forget pair counters idle for a day and email counters past their window.
#[tracing::instrument(name = "db throttle.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
        "WITH pairs AS (
             DELETE FROM login_throttle WHERE updated_at < now() - interval '1 day' RETURNING 1
         ), accounts AS (
             DELETE FROM login_account_failures
             WHERE updated_at < now() - {ACCOUNT_WINDOW_SQL} RETURNING 1
         )
         SELECT (SELECT count(*) FROM pairs) + (SELECT count(*) FROM accounts)"
    )))
    .fetch_one(db)
    .await
    .map(|n| n.unsigned_abs())
}
