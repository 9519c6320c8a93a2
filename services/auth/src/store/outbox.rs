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
