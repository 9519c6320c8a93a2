//! auth's event outbox (`event_outbox`): an event row commits with the change it announces; the
//! relay of libs/jobs publishes it.

use sqlx::PgExecutor;
use uuid::Uuid;

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

/// Delete events published longer than `keep` before `now`, in batches; unpublished ones are
/// never deleted.
#[tracing::instrument(name = "db outbox.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(
    db: &sqlx::PgPool,
    now: time::OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now - keep;
    platform::db::delete_in_batches(|batch| async move {
        sqlx::query(
            "DELETE FROM event_outbox WHERE id IN (
                 SELECT id FROM event_outbox
                 WHERE published_at < $1
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
