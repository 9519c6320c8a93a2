use platform::pagination::limit_sql;
use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct CategoryRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

#[tracing::instrument(name = "db categories.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    slug: &str,
    parent_id: Option<Uuid>,
) -> Result<CategoryRow, StoreError> {
    sqlx::query_as(
        "INSERT INTO categories (id, name, slug, parent_id) VALUES ($1, $2, $3, $4)
         RETURNING id, name, slug, parent_id, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(slug)
    .bind(parent_id)
    .fetch_one(db)
    .await
    .map_err(StoreError::of_write)
}

/// Categories after `after` in (name, id) order; `limit + 1` rows.
#[tracing::instrument(name = "db categories.page", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn page(
    db: impl PgExecutor<'_>,
    after: Option<(String, Uuid)>,
    limit: u32,
) -> Result<Vec<CategoryRow>, StoreError> {
    let (after_name, after_id) = after.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, name, slug, parent_id, created_at FROM categories
         WHERE $1::text IS NULL OR (name, id) > ($1, $2)
         ORDER BY name, id{}",
        limit_sql(limit)
    )))
    .bind(after_name)
    .bind(after_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db categories.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<CategoryRow>, StoreError> {
    sqlx::query_as("SELECT id, name, slug, parent_id, created_at FROM categories WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
        .map_err(StoreError::from)
}

#[tracing::instrument(name = "db categories.update", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: Option<&str>,
    slug: Option<&str>,
    parent_id: Option<Option<Uuid>>,
) -> Result<Option<CategoryRow>, StoreError> {
    sqlx::query_as(
        "UPDATE categories SET name = coalesce($2, name), slug = coalesce($3, slug),
                parent_id = CASE WHEN $4 THEN $5 ELSE parent_id END
         WHERE id = $1
         RETURNING id, name, slug, parent_id, created_at",
    )
    .bind(id)
    .bind(name)
    .bind(slug)
    .bind(parent_id.is_some())
    .bind(parent_id.flatten())
    .fetch_optional(db)
    .await
    .map_err(StoreError::of_write)
}

/// `Ok(false)` when there is no such category; [`StoreError::StillReferenced`] when items or
/// children use it.
#[tracing::instrument(name = "db categories.delete", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM categories WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(StoreError::of_delete)
}
