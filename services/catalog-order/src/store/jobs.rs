use std::time::Duration;

use jobs::events::Event;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{JobProgress, JobStatus};
use crate::store;
use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub owner_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Who and what caused a job: its owner may read its status; the request's id and trace context
/// travel with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cause<'a> {
    pub owner_id: Option<Uuid>,
    pub request_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

/// Put a job in the outbox; call inside the transaction of the change that causes it.
#[tracing::instrument(name = "db jobs.enqueue", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    kind: &str,
    payload: &serde_json::Value,
    cause: &Cause<'_>,
) -> Result<Uuid, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload, owner_id, request_id, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(payload)
    .bind(cause.owner_id)
    .bind(cause.request_id)
    .bind(cause.traceparent)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db jobs.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, StoreError> {
    sqlx::query_as(
        "SELECT id, kind, status, attempts, error, owner_id, created_at, updated_at
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// A job as the export shows it: with its payload.
#[derive(Debug, Clone, FromRow)]
pub struct OwnJobRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The jobs that concern a customer: the ones they caused (`owner_id`) and any whose payload
/// names them (`customer_id`), oldest first.
#[tracing::instrument(name = "db jobs.concerning", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn concerning(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
) -> Result<Vec<OwnJobRow>, StoreError> {
    sqlx::query_as(
        "SELECT id, kind, status, attempts, error, payload, created_at, updated_at FROM jobs
         WHERE owner_id = $1
         UNION
         SELECT id, kind, status, attempts, error, payload, created_at, updated_at FROM jobs
         WHERE payload->>'customer_id' = $1::text
         ORDER BY created_at, id",
    )
    .bind(customer_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// Top-level payload fields that hold personal data (the order confirmation's `email`; the
/// profile's fields, should a job ever carry them). Item names, quantities and amounts stay.
pub const PERSONAL_PAYLOAD_FIELDS: [&str; 7] = [
    "email",
    "full_name",
    "phone",
    "address_line",
    "city",
    "postal_code",
    "country",
];

/// Remove [`PERSONAL_PAYLOAD_FIELDS`] from the payloads of the jobs that concern a customer.
/// A job not yet published goes out without them (an order e-mail then has no address and fails
/// for good: the account it was for is gone).
#[tracing::instrument(name = "db jobs.scrub_personal", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn scrub_personal(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET payload = payload - $2::text[]
         WHERE (owner_id = $1 OR payload->>'customer_id' = $1::text)
           AND payload ?| $2::text[]",
    )
    .bind(customer_id)
    .bind(&PERSONAL_PAYLOAD_FIELDS[..])
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Apply an event once: the inbox row and its effect commit together, and an event seen before
/// changes nothing. Status events of jobs this database does not hold are skipped unrecorded.
///
/// A job status event moves the job only forward ([`JobProgress::can_become`]; a replayed dead
/// job's later attempts move it on from `dead`): the rule is
/// checked in the `UPDATE`'s `WHERE`, which PostgreSQL re-evaluates on the locked row when another
/// transaction changed it first, so replicas applying a job's events concurrently and in any
/// order cannot move it back. An event the rule refuses is still recorded in the inbox.
#[tracing::instrument(name = "db jobs.apply_event", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn apply_event(db: &sqlx::PgPool, event: &Event) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    // The status of another service's job (auth's e-mails share the stream) is not ours to
    // record: in the same statement, so skipping it costs no round trip.
    let foreign_job = match event {
        Event::JobStatus(e) => Some(e.job_id),
        _ => None,
    };
    let fresh = sqlx::query(
        "INSERT INTO job_event_inbox (event_id)
         SELECT $1 WHERE $2::uuid IS NULL OR EXISTS (SELECT 1 FROM jobs WHERE id = $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(event.id())
    .bind(foreign_job)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        match event {
            Event::JobStatus(e) => {
                let Ok(status) = e.status.parse::<JobStatus>() else {
                    // A newer worker's status: nothing this version can order it against.
                    tracing::warn!(
                        job_id = %e.job_id,
                        status = %e.status,
                        "unknown job status; skipped"
                    );
                    return tx.commit().await;
                };
                // The column is an `integer`: clamp there, so the domain and the SQL compare alike.
                let attempts = e.attempts.clamp(0, i64::from(i32::MAX));
                let next = JobProgress::new(u32::try_from(attempts).unwrap_or(0), status);
                let applied = advance(&mut *tx, e.job_id, next, e.error.as_deref()).await?;
                // Only the event that made the job dead fails its image (a `dead` arriving after
                // `succeeded` changes nothing).
                if applied && status == JobStatus::Dead && e.kind == jobs::images::THUMBNAIL_KIND {
                    store::images::mark_failed(&mut *tx, e.job_id).await?;
                }
            }
            Event::ImageProcessed(e) => {
                store::images::mark_ready(&mut *tx, e.image_id, &e.variants).await?;
            }
            // The account is gone from auth: keep the orders (amounts, lines) for the books,
            // drop what identifies the person.
            Event::AccountDeleted(e) => {
                store::customers::anonymise(&mut *tx, e.user_id).await?;
                let scrubbed = scrub_personal(&mut *tx, e.user_id).await?;
                store::payments::scrub_customer(&mut *tx, e.user_id).await?;
                store::idempotency::forget_user(&mut *tx, e.user_id).await?;
                tracing::info!(customer_id = %e.user_id, jobs_scrubbed = scrubbed, "customer anonymised");
            }
        }
    }
    tx.commit().await
}

/// Set the job's progress to `next` if [`JobProgress::can_become`] allows it from the stored one;
/// `false` when it does not (or there is no such job).
async fn advance(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    next: JobProgress,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    // `JobProgress::can_become(stored, next)` in SQL, with the statuses named by the domain:
    // nothing follows `succeeded` ($5); `succeeded` follows anything; only a later attempt (a
    // replay) follows `dead` ($6); `dead` follows the same or a later attempt; otherwise a later
    // attempt, or a higher rank within the same one ($7).
    // `attempts` keeps the highest count seen: `succeeded` may come from an older attempt.
    Ok(sqlx::query(
        "UPDATE jobs SET status = $2, attempts = GREATEST(attempts, $3), error = $4,
                         updated_at = now()
         WHERE id = $1
           AND status <> $5
           AND ($2 = $5
                OR (status = $6 AND attempts < $3)
                OR (status <> $6 AND $2 = $6 AND attempts <= $3)
                OR (status <> $6 AND (attempts < $3
                                      OR (attempts = $3 AND status = ANY($7::text[])))))",
    )
    .bind(job_id)
    .bind(next.status.as_str())
    .bind(i32::try_from(next.attempts).unwrap_or(i32::MAX))
    .bind(error)
    .bind(JobStatus::Succeeded.as_str())
    .bind(JobStatus::Dead.as_str())
    .bind(next.status.ranked_below())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Delete jobs that finished (a final status: nothing changes them any more) longer than `keep`
/// before `now`, in batches. A job not final (queued, running, or failed and awaiting its retry)
/// or not yet published by the relay (an outbox row still to send) is never deleted, and neither
/// is a job an item image still points at.
#[tracing::instrument(name = "db jobs.purge_finished", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge_finished(
    db: &sqlx::PgPool,
    now: OffsetDateTime,
    keep: Duration,
) -> Result<u64, sqlx::Error> {
    let finals = &JobStatus::finals();
    let cutoff = now - keep;
    platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM jobs WHERE id IN (
                 SELECT j.id FROM jobs j
                 WHERE j.status = ANY($1::text[]) AND j.updated_at < $2
                   AND j.published_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM item_images i WHERE i.job_id = j.id)
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(finals)
        .bind(cutoff)
        .bind(batch)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .await
}

/// Forget events applied longer than `keep` before `now`, in batches; never one the events stream
/// may still deliver again (younger than [`jobs::topology::EVENTS_MAX_AGE`]), whatever `keep` is.
#[tracing::instrument(name = "db jobs.purge_inbox", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge_inbox(
    db: &sqlx::PgPool,
    now: OffsetDateTime,
    keep: Duration,
) -> Result<u64, sqlx::Error> {
    let aged = platform::db::Aged {
        table: "job_event_inbox",
        key: "event_id",
        at: "received_at",
    };
    platform::db::delete_before(db, aged, now - keep.max(jobs::topology::EVENTS_MAX_AGE)).await
}
