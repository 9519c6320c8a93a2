use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

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

/// Put a job in the outbox; call inside the transaction of the change that causes it.
pub async fn enqueue(
    db: impl PgExecutor<'_>,
    kind: &str,
    payload: &serde_json::Value,
    owner_id: Option<Uuid>,
    request_id: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload, owner_id, request_id) VALUES ($1, $2, $3, $4, $5)
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(payload)
    .bind(owner_id)
    .bind(request_id)
    .fetch_one(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, status, attempts, error, owner_id, created_at, updated_at
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Apply a job status event once: the inbox row and the status change commit together, and an
/// event seen before changes nothing.
pub async fn apply_event(
    db: &sqlx::PgPool,
    event: &jobs::runtime::JobEvent,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let fresh =
        sqlx::query("INSERT INTO job_event_inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(event.event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if fresh {
        sqlx::query(
            "UPDATE jobs SET status = $2, attempts = $3, error = $4, updated_at = now() WHERE id = $1",
        )
        .bind(event.job_id)
        .bind(&event.status)
        .bind(i32::try_from(event.attempts).unwrap_or(i32::MAX))
        .bind(&event.error)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
