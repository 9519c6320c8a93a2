use platform::pagination::limit_sql;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub category_id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i32,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, category_id, sku, name, description, price_cents, currency, stock, \
                       active, created_at, updated_at";

pub struct NewItem<'a> {
    pub category_id: Uuid,
    pub sku: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub price_cents: i64,
    pub currency: &'a str,
    pub stock: i32,
    pub active: bool,
}

#[tracing::instrument(name = "db items.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(db: impl PgExecutor<'_>, item: &NewItem<'_>) -> Result<ItemRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock, active)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(item.category_id)
    .bind(item.sku)
    .bind(item.name)
    .bind(item.description)
    .bind(item.price_cents)
    .bind(item.currency)
    .bind(item.stock)
    .bind(item.active)
    .fetch_one(db)
    .await
    .map_err(StoreError::of_write)
}

#[tracing::instrument(name = "db items.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ItemRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM items WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// A partial update; `None` keeps a column.
#[derive(Debug, Default)]
pub struct ItemChange<'a> {
    pub category_id: Option<Uuid>,
    pub sku: Option<&'a str>,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub price_cents: Option<i64>,
    pub currency: Option<&'a str>,
    pub stock: Option<i32>,
    pub active: Option<bool>,
}

#[tracing::instrument(name = "db items.update", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    c: &ItemChange<'_>,
) -> Result<Option<ItemRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE items SET
             category_id = coalesce($2, category_id), sku = coalesce($3, sku),
             name = coalesce($4, name), description = coalesce($5, description),
             price_cents = coalesce($6, price_cents), currency = coalesce($7, currency),
             stock = coalesce($8, stock), active = coalesce($9, active), updated_at = now()
         WHERE id = $1
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(c.category_id)
    .bind(c.sku)
    .bind(c.name)
    .bind(c.description)
    .bind(c.price_cents)
    .bind(c.currency)
    .bind(c.stock)
    .bind(c.active)
    .fetch_optional(db)
    .await
    .map_err(StoreError::of_write)
}

/// The sorts the public list offers; each has its keyset index (see the migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSort {
    NewestFirst,
    PriceAsc,
    PriceDesc,
    NameAsc,
}

/// Where the previous page ended, in the sort's own key.
// Externally tagged: the variants have the same shape, so an untagged cursor could decode as
// the wrong one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ItemKey {
    Created(i128, Uuid),
    Price(i64, Uuid),
    Name(String, Uuid),
}

impl ItemSort {
    pub fn key(self, row: &ItemRow) -> ItemKey {
        match self {
            ItemSort::NewestFirst => {
                ItemKey::Created(row.created_at.unix_timestamp_nanos(), row.id)
            }
            ItemSort::PriceAsc | ItemSort::PriceDesc => ItemKey::Price(row.price_cents, row.id),
            ItemSort::NameAsc => ItemKey::Name(row.name.clone(), row.id),
        }
    }
}

#[derive(Debug, Default)]
pub struct ItemFilter {
    pub category_id: Option<Uuid>,
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
}

/// Active items matching `filter`, after `after` in `sort` order; `limit + 1` rows.
#[tracing::instrument(name = "db items.page", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &ItemFilter,
    sort: ItemSort,
    after: Option<&ItemKey>,
    limit: u32,
) -> Result<Vec<ItemRow>, StoreError> {
    let mut sql = page_query("", filter, sort, after, limit).map_err(StoreError::BadCursor)?;
    Ok(sql.build_query_as().fetch_all(db).await?)
}

/// The list query, built from fixed fragments with every value bound (no value is ever
/// spliced into the SQL text; the limit is written as digits, see `limit_sql`). `prefix` is ""
/// to run it, "EXPLAIN " to see its plan (tests).
pub fn page_query(
    prefix: &str,
    filter: &ItemFilter,
    sort: ItemSort,
    after: Option<&ItemKey>,
    limit: u32,
) -> Result<QueryBuilder<Postgres>, String> {
    let mut q = QueryBuilder::new(format!("{prefix}SELECT {COLUMNS} FROM items WHERE active"));
    if let Some(category) = filter.category_id {
        q.push(" AND category_id = ").push_bind(category);
    }
    if let Some(text) = &filter.q {
        q.push(" AND search @@ websearch_to_tsquery('english', ")
            .push_bind(text.clone())
            .push(")");
    }
    if let Some(min) = filter.min_price {
        q.push(" AND price_cents >= ").push_bind(min);
    }
    if let Some(max) = filter.max_price {
        q.push(" AND price_cents <= ").push_bind(max);
    }
    match filter.in_stock {
        Some(true) => {
            q.push(" AND stock > 0");
        }
        Some(false) => {
            q.push(" AND stock = 0");
        }
        None => {}
    }
    match (sort, after) {
        (_, None) => {}
        (ItemSort::NewestFirst, Some(ItemKey::Created(nanos, id))) => {
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(*nanos).map_err(|e| e.to_string())?;
            q.push(" AND (created_at, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::PriceAsc, Some(ItemKey::Price(p, id))) => {
            q.push(" AND (price_cents, id) > (")
                .push_bind(*p)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::PriceDesc, Some(ItemKey::Price(p, id))) => {
            q.push(" AND (price_cents, id) < (")
                .push_bind(*p)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (ItemSort::NameAsc, Some(ItemKey::Name(n, id))) => {
            q.push(" AND (name, id) > (")
                .push_bind(n.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        _ => return Err("cursor does not match the sort".into()),
    }
    q.push(match sort {
        ItemSort::NewestFirst => " ORDER BY created_at DESC, id DESC",
        ItemSort::PriceAsc => " ORDER BY price_cents, id",
        ItemSort::PriceDesc => " ORDER BY price_cents DESC, id DESC",
        ItemSort::NameAsc => " ORDER BY name, id",
    });
    q.push(limit_sql(limit));
    Ok(q)
}
