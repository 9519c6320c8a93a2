use jobs::images::Variant;
use sqlx::types::Json;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: Uuid,
    pub item_id: Uuid,
    pub job_id: Uuid,
    pub status: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub variants: Json<Vec<Variant>>,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str =
    "id, item_id, job_id, status, content_type, width, height, variants, created_at";

pub struct NewImage<'a> {
    pub id: Uuid,
    pub item_id: Uuid,
    pub job_id: Uuid,
    pub content_type: &'a str,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

#[tracing::instrument(name = "db images.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(db: impl PgExecutor<'_>, image: &NewImage<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO item_images (id, item_id, job_id, content_type, width, height, bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(image.id)
    .bind(image.item_id)
    .bind(image.job_id)
    .bind(image.content_type)
    .bind(i32::try_from(image.width).unwrap_or(i32::MAX))
    .bind(i32::try_from(image.height).unwrap_or(i32::MAX))
    .bind(i64::try_from(image.bytes).unwrap_or(i64::MAX))
    .execute(db)
    .await
    .map(|_| ())
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db images.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(
    db: impl PgExecutor<'_>,
    item_id: Uuid,
    image_id: Uuid,
) -> Result<Option<ImageRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM item_images WHERE id = $1 AND item_id = $2"
    )))
    .bind(image_id)
    .bind(item_id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// An item's images, oldest first.
#[tracing::instrument(name = "db images.of_item", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn of_item(db: impl PgExecutor<'_>, item_id: Uuid) -> Result<Vec<ImageRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM item_images WHERE item_id = $1 ORDER BY created_at, id LIMIT 100"
    )))
    .bind(item_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// The worker stored the variants: the image can be served.
#[tracing::instrument(name = "db images.mark_ready", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_ready(
    db: impl PgExecutor<'_>,
    image_id: Uuid,
    variants: &[Variant],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE item_images SET status = 'ready', variants = $2, updated_at = now() WHERE id = $1",
    )
    .bind(image_id)
    .bind(Json(variants))
    .execute(db)
    .await
    .map(|_| ())
}

/// The image's job died: it will never be ready (a corrupt file).
#[tracing::instrument(name = "db images.mark_failed", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn mark_failed(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE item_images SET status = 'failed', updated_at = now()
         WHERE job_id = $1 AND status = 'processing'",
    )
    .bind(job_id)
    .execute(db)
    .await
    .map(|_| ())
}

/// Which of `ids` have an image row.
pub async fn existing(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM item_images WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}
