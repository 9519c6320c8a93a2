//! Per-email failed-login counter (see the migration for why it is keyed by email, not user).

use sqlx::PgExecutor;

/// Count a failure. From the `max_failures`-th on, each failure locks the email for
/// 2^(failures - max) seconds, at most 15 minutes.
#[tracing::instrument(name = "db throttle.record_failure", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn record_failure(
    db: impl PgExecutor<'_>,
    email: &str,
    max_failures: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_throttle AS t (email, failures, locked_until)
         VALUES ($1, 1, CASE WHEN $2 <= 1 THEN now() + interval '1 second' END)
         ON CONFLICT (email) DO UPDATE SET
             failures = t.failures + 1,
             updated_at = now(),
             locked_until = CASE WHEN t.failures + 1 >= $2 THEN now() + least(
                 interval '15 minutes',
                 make_interval(secs => power(2.0, least(t.failures + 1 - $2, 10))::float8))
             END",
    )
    .bind(email)
    .bind(i32::try_from(max_failures).unwrap_or(i32::MAX))
    .execute(db)
    .await
    .map(|_| ())
}

#[tracing::instrument(name = "db throttle.clear", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn clear(db: impl PgExecutor<'_>, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle WHERE email = $1")
        .bind(email)
        .execute(db)
        .await
        .map(|_| ())
}

/// Forget counters idle for a day.
#[tracing::instrument(name = "db throttle.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM login_throttle WHERE updated_at < now() - interval '1 day'")
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}
