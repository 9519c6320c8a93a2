//! The scheduler's jobs for catalog data (family `catalog`): cancel unpaid orders past their
//! payment window, delete what is kept no longer than its retention (finished jobs, applied
//! events, `Idempotency-Key`s; see [`Retention`]), and delete image objects no row refers to.

use std::sync::Arc;
use std::time::Duration;

use jobs::images::ImageStore;
use jobs::maintenance::CatalogJob;
use jobs::runtime::{Handler, Job, JobError};
use platform::cache::ResponseCache;
use platform::db::PurgeMetrics;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::settings::Retention;
use crate::store;

/// The `kind` label of `retention_purged_rows_total` for each purged table.
pub const PURGED_KINDS: &[&str] = &[
    "jobs",
    "job_events",
    "payment_events",
    "idempotency_keys",
    "image_objects",
];

/// How old an object must be before the sweep may call it an orphan: an upload stores its
/// original a moment before its transaction commits the row that refers to it.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

pub struct Maintenance {
    pub db: PgPool,
    pub order_payment_timeout: Duration,
    pub retention: Retention,
    pub purged: PurgeMetrics,
    pub images: ImageStore,
    pub cache: Arc<ResponseCache>,
}

/// Rows deleted by [`purge_jobs`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PurgedJobs {
    pub jobs: u64,
    pub job_events: u64,
    /// Payment provider events remembered for their dedupe, past the same retention.
    pub payment_events: u64,
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
        payment_events: store::payments::purge_events(db, now, retention.retention_job_events)
            .await?,
    })
}

/// Delete the objects of images that have no row (`items/<item>/<image>/<size>`), modified more
/// than `grace` before `now`: the original of an upload whose transaction failed after the put
/// (the upload deletes it itself unless it crashed) and whatever a job stored for it. Objects
/// named otherwise are not ours and stay. Returns how many were deleted.
pub async fn sweep_images(
    db: &PgPool,
    images: &ImageStore,
    now: OffsetDateTime,
    grace: Duration,
) -> anyhow::Result<u64> {
    let cutoff = now - grace;
    let old: Vec<(String, uuid::Uuid)> = images
        .list()
        .await?
        .into_iter()
        .filter(|o| o.modified.is_some_and(|m| m < cutoff))
        .filter_map(|o| {
            let mut parts = o.name.split('/');
            let image = match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("items"), Some(_), Some(image), Some(_)) => image.parse().ok()?,
                _ => return None,
            };
            Some((o.name, image))
        })
        .collect();
    let ids: Vec<uuid::Uuid> = old.iter().map(|(_, id)| *id).collect();
    let kept: std::collections::HashSet<uuid::Uuid> = store::images::existing(db, &ids)
        .await?
        .into_iter()
        .collect();
    let mut deleted = 0;
    for (name, _) in old.iter().filter(|(_, id)| !kept.contains(id)) {
        images.delete(name).await?;
        deleted += 1;
    }
    Ok(deleted)
}

impl Handler for Maintenance {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        // A database error is worth another attempt; the statements are idempotent.
        let retry = |e: sqlx::Error| JobError::Retry(format!("database: {e}"));
        let now = OffsetDateTime::now_utc();
        let Some(kind) = CatalogJob::from_kind(&job.kind) else {
            return Err(JobError::unknown_kind(&job.kind));
        };
        match kind {
            CatalogJob::ExpireOrders => {
                let (n, restocked) =
                    store::orders::expire_unpaid(&self.db, self.order_payment_timeout)
                        .await
                        .map_err(retry)?;
                if !restocked.is_empty() {
                    self.cache.changed(&crate::changes::of_items(restocked));
                }
                tracing::info!(orders = n, "expired unpaid orders");
            }
            CatalogJob::PurgeJobs => {
                let purged = purge_jobs(&self.db, &self.retention, now)
                    .await
                    .map_err(retry)?;
                self.purged.record("jobs", purged.jobs);
                self.purged.record("job_events", purged.job_events);
                self.purged.record("payment_events", purged.payment_events);
                tracing::info!(
                    jobs = purged.jobs,
                    job_events = purged.job_events,
                    "purged finished jobs and applied events past their retention"
                );
            }
            CatalogJob::PurgeIdempotencyKeys => {
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
            CatalogJob::SweepImages => {
                let n = sweep_images(&self.db, &self.images, now, ORPHAN_GRACE)
                    .await
                    .map_err(|e| JobError::Retry(format!("{e:#}")))?;
                self.purged.record("image_objects", n);
                tracing::info!(objects = n, "deleted image objects no image refers to");
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
            cache: ResponseCache::new(&Default::default(), &registry).unwrap(),
            // Never connected either.
            images: ImageStore::new(
                async_nats::jetstream::new(
                    async_nats::ConnectOptions::new()
                        .retry_on_initial_connect()
                        .connect("nats://127.0.0.1:1")
                        .await
                        .unwrap(),
                ),
                &jobs::Topology::new(platform::nats::Namespace::new("test").unwrap()),
            ),
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
