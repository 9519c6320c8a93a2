//! auth's outboxes: events (`event_outbox`) and jobs (`job_outbox`, e-mails the worker sends). A
//! row commits with the change that causes it; the relays of libs/jobs publish it.

use sqlx::PgExecutor;
use uuid::Uuid;

/// The events outbox table (`app::EVENT_OUTBOX`).
pub const EVENT_TABLE: &str = "event_outbox";
/// The jobs outbox table (`app::JOB_OUTBOX`).
pub const JOB_TABLE: &str = "job_outbox";

/// Who caused an event: the request's id and trace context travel with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cause<'a> {
    pub request_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

/// Put an event in the outbox under `id` (also its `Nats-Msg-Id`); call inside the transaction of
/// the change it announces.
#[tracing::instrument(name = "db outbox.enqueue", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    id: Uuid,
    kind: &str,
    payload: &serde_json::Value,
    cause: &Cause<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_outbox (id, kind, payload, request_id, traceparent)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(cause.request_id)
    .bind(cause.traceparent)
    .execute(db)
    .await
    .map(|_| ())
}

/// Put a job in the job outbox under `id` (its `Nats-Msg-Id` and job id) when `wanted`; the same
/// statement runs either way, so a caller whose answer must not tell whether it wrote one
/// (`recovery::forgot`) costs the same on both paths.
#[tracing::instrument(name = "db outbox.enqueue_job", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn enqueue_job_if(
    db: impl PgExecutor<'_>,
    wanted: bool,
    id: Uuid,
    kind: &str,
    payload: &serde_json::Value,
    cause: &Cause<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_outbox (id, kind, payload, request_id, traceparent)
         SELECT $1, $2, $3, $4, $5 WHERE $6",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(cause.request_id)
    .bind(cause.traceparent)
    .bind(wanted)
    .execute(db)
    .await
    .map(|_| ())
}

/// Delete rows of auth's outbox `table` ([`EVENT_TABLE`] or [`JOB_TABLE`], never input)
/// published longer than `keep` before `now`, in batches; unpublished ones are never deleted.
/// (A job's link is gone already: the table's trigger drops it on publication.)
#[tracing::instrument(name = "db outbox.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql", table))]
pub async fn purge(
    db: &sqlx::PgPool,
    table: &'static str,
    now: time::OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let aged = platform::db::Aged {
        table,
        key: "id",
        at: "published_at",
    };
    platform::db::delete_before(db, aged, now - keep).await
}
