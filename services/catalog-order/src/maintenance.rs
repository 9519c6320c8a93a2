//! The scheduler's jobs for catalog data (family `catalog`): cancel unpaid orders past their
//! payment window, and delete what is kept no longer than its retention (finished jobs, applied
//! events, `Idempotency-Key`s; see [`Retention`]).

use std::time::Duration;

use jobs::runtime::{Handler, Job, JobError};
use jobs::schedule::{EXPIRE_ORDERS, PURGE_IDEMPOTENCY_KEYS, PURGE_JOBS};
use platform::db::PurgeMetrics;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::settings::Retention;
use crate::store;

/// The `kind` label of `retention_purged_rows_total` for each purged table.
pub const PURGED_KINDS: &[&str] = &["jobs", "job_events", "idempotency_keys"];

pub struct Maintenance {
    pub db: PgPool,
    pub order_payment_timeout: Duration,
    pub retention: Retention,
    pub purged: PurgeMetrics,
}

/// Rows deleted by [`purge_jobs`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PurgedJobs {
    pub jobs: u64,
    pub job_events: u64,
}

/// Delete finished jobs and applied events past their retention at `now`.
pub async fn purge_jobs(
    db: &PgPool,
    retention: &Retention,
    now: OffsetDateTime,
) -> Result<PurgedJobs, sqlx::Error> {
    Ok(PurgedJobs {
        jobs: store::jobs::purge_finished(db, now, retention.retention_jobs).await?,
        job_events: store::jobs::purge_inbox(db, now, retention.retention_job_events).await?,
    })
}

impl Handler for Maintenance {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        // A database error is worth another attempt; the statements are idempotent.
        let retry = |e: sqlx::Error| JobError::Retry(format!("database: {e}"));
        let now = OffsetDateTime::now_utc();
        match job.kind.as_str() {
            EXPIRE_ORDERS => {
                let n = store::orders::expire_unpaid(&self.db, self.order_payment_timeout)
                    .await
                    .map_err(retry)?;
                tracing::info!(orders = n, "expired unpaid orders");
            }
            PURGE_JOBS => {
                let purged = purge_jobs(&self.db, &self.retention, now)
                    .await
                    .map_err(retry)?;
                self.purged.record("jobs", purged.jobs);
                self.purged.record("job_events", purged.job_events);
                tracing::info!(
                    jobs = purged.jobs,
                    job_events = purged.job_events,
                    "purged finished jobs and applied events past their retention"
                );
            }
            PURGE_IDEMPOTENCY_KEYS => {
                let n = store::idempotency::purge_expired(
                    &self.db,
                    now,
                    self.retention.retention_idempotency_keys,
                )
                .await
                .map_err(retry)?;
                self.purged.record("idempotency_keys", n);
                tracing::info!(keys = n, "purged idempotency keys past their retention");
            }
            // A kind this version does not know comes from a newer producer (a new worker's
            // scheduler during a rolling upgrade, while old replicas still consume the family).
            // Failing it would dead-letter a normal job and fire DeadLetterQueueNotEmpty; a retry
            // hands it back, and a new replica picks it up within `max_deliver`.
            other => {
                return Err(JobError::Retry(format!(
                    "unknown job kind {other}: left for a newer replica"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kind_from_a_newer_producer_is_retried_not_dead_lettered() {
        let registry = platform::metrics::Metrics::new("test", "0").unwrap();
        let maintenance = Maintenance {
            // Never connected: an unknown kind is answered before any query.
            db: PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            order_payment_timeout: Duration::from_secs(1800),
            retention: Retention::default(),
            purged: PurgeMetrics::register(&registry, PURGED_KINDS).unwrap(),
        };
        let job = Job {
            id: uuid::Uuid::now_v7(),
            kind: "catalog.from_a_newer_worker".into(),
            payload: serde_json::json!({}),
            attempt: 1,
            delivery: 1,
            request_id: None,
            traceparent: None,
        };
        match maintenance.handle(&job).await {
            Err(JobError::Retry(e)) => assert!(e.contains("catalog.from_a_newer_worker"), "{e}"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}
