use jobs::events::Event;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store;

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
) -> Result<Uuid, sqlx::Error> {
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
}

#[tracing::instrument(name = "db jobs.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, status, attempts, error, owner_id, created_at, updated_at
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Apply an event once: the inbox row and its effect commit together, and an event seen before
/// changes nothing.
#[tracing::instrument(name = "db jobs.apply_event", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn apply_event(db: &sqlx::PgPool, event: &Event) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let fresh =
        sqlx::query("INSERT INTO job_event_inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(event.id())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if fresh {
        match event {
            Event::JobStatus(e) => {
                sqlx::query(
                    "UPDATE jobs SET status = $2, attempts = $3, error = $4, updated_at = now()
                     WHERE id = $1",
                )
                .bind(e.job_id)
                .bind(&e.status)
                .bind(i32::try_from(e.attempts).unwrap_or(i32::MAX))
                .bind(&e.error)
                .execute(&mut *tx)
                .await?;
                if e.status == "dead" && e.kind == jobs::images::THUMBNAIL_KIND {
                    store::images::mark_failed(&mut *tx, e.job_id).await?;
                }
            }
            Event::ImageProcessed(e) => {
                store::images::mark_ready(&mut *tx, e.image_id, &e.variants).await?;
            }
        }
    }
    tx.commit().await
}
