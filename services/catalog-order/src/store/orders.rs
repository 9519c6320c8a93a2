use platform::pagination::limit_sql;
use sqlx::PgPool;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub total_cents: i64,
    pub currency: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The latest payment, filled by the use cases that show it (`store::payments::latest_of`).
    #[sqlx(skip)]
    pub payment: Option<crate::store::payments::PaymentBrief>,
}

#[derive(Debug, Clone, FromRow)]
pub struct LineRow {
    pub order_id: Uuid,
    pub line_no: i32,
    pub item_id: Uuid,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

/// An item as an order sees it, locked until the order's transaction ends.
#[derive(Debug, Clone, FromRow)]
pub struct StockRow {
    pub id: Uuid,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i32,
    pub active: bool,
}

const ORDER_COLUMNS: &str =
    "id, customer_id, status, total_cents, currency, created_at, updated_at";

/// Lock the ordered items, always in id order so that concurrent orders cannot deadlock.
#[tracing::instrument(name = "db orders.lock_items", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock_items(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<StockRow>, StoreError> {
    sqlx::query_as(
        "SELECT id, name, price_cents, currency, stock, active FROM items
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// Take `quantities[i]` of `ids[i]` from stock (the rows are locked and checked already).
#[tracing::instrument(name = "db orders.take_stock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn take_stock(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    quantities: &[i32],
) -> Result<u64, StoreError> {
    sqlx::query(
        "UPDATE items i SET stock = i.stock - l.quantity, updated_at = now()
         FROM unnest($1::uuid[], $2::int4[]) AS l (id, quantity)
         WHERE i.id = l.id AND i.stock >= l.quantity",
    )
    .bind(ids)
    .bind(quantities)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db orders.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
    total_cents: i64,
    currency: &str,
) -> Result<OrderRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders (id, customer_id, status, total_cents, currency)
         VALUES ($1, $2, 'pending', $3, $4)
         RETURNING {ORDER_COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(customer_id)
    .bind(total_cents)
    .bind(currency)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

/// Insert all lines of an order in one statement.
#[tracing::instrument(name = "db orders.insert_lines", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert_lines(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
    item_ids: &[Uuid],
    names: &[String],
    quantities: &[i32],
    unit_prices: &[i64],
) -> Result<Vec<LineRow>, StoreError> {
    sqlx::query_as(
        "INSERT INTO order_lines (order_id, line_no, item_id, name, quantity, unit_price_cents)
         SELECT $1, l.n::int4, l.item_id, l.name, l.quantity, l.price
         FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::int8[])
              WITH ORDINALITY AS l (item_id, name, quantity, price, n)
         RETURNING order_id, line_no, item_id, name, quantity, unit_price_cents",
    )
    .bind(order_id)
    .bind(item_ids)
    .bind(names)
    .bind(quantities)
    .bind(unit_prices)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// The lines of several orders in one query, whatever their number.
#[tracing::instrument(name = "db orders.lines_of", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lines_of(
    db: impl PgExecutor<'_>,
    order_ids: &[Uuid],
) -> Result<Vec<LineRow>, StoreError> {
    sqlx::query_as(
        "SELECT order_id, line_no, item_id, name, quantity, unit_price_cents FROM order_lines
         WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(order_ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// Every order of a customer, oldest first (the export).
#[tracing::instrument(name = "db orders.of_customer", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn of_customer(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
) -> Result<Vec<OrderRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY created_at, id"
    )))
    .bind(customer_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db orders.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<OrderRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db orders.lock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<OrderRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db orders.set_status", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
) -> Result<OrderRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 RETURNING {ORDER_COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

/// Put an order's quantities back in stock; returns the items restocked.
#[tracing::instrument(name = "db orders.restock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn restock(db: impl PgExecutor<'_>, order_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar(
        "UPDATE items i SET stock = i.stock + l.quantity, updated_at = now()
         FROM order_lines l WHERE l.order_id = $1 AND i.id = l.item_id
         RETURNING i.id",
    )
    .bind(order_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// Cancel pending orders older than `timeout` and put their stock back, in batches; returns how
/// many were cancelled and the items restocked. Orders being changed right now are skipped (the
/// next run gets them), and so are orders with a payment opened less than `timeout` ago and still
/// processing: opening a payment gives the customer another window to finish it.
#[tracing::instrument(name = "db orders.expire_unpaid", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn expire_unpaid(
    db: &PgPool,
    timeout: std::time::Duration,
) -> Result<(u64, Vec<Uuid>), sqlx::Error> {
    let mut total = 0;
    let mut restocked = Vec::new();
    loop {
        let (n, items): (i64, Vec<Uuid>) = sqlx::query_as(
            "WITH expired AS (
                 UPDATE orders SET status = 'cancelled', updated_at = now()
                 WHERE id IN (SELECT id FROM orders
                              WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
                                AND NOT EXISTS (SELECT 1 FROM payments p
                                                WHERE p.order_id = orders.id AND p.status = 'processing'
                                                  AND p.created_at >= now() - make_interval(secs => $1))
                              ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED)
                 RETURNING id
             ), restocked AS (
                 UPDATE items i SET stock = i.stock + l.quantity, updated_at = now()
                 FROM (SELECT item_id, sum(quantity)::int AS quantity FROM order_lines
                       WHERE order_id IN (SELECT id FROM expired) GROUP BY item_id) l
                 WHERE i.id = l.item_id
                 RETURNING i.id
             )
             SELECT (SELECT count(*) FROM expired),
                    (SELECT coalesce(array_agg(id), '{}') FROM restocked)",
        )
        .bind(timeout.as_secs_f64())
        .fetch_one(db)
        .await?;
        total += n.unsigned_abs();
        restocked.extend(items);
        if n < 500 {
            return Ok((total, restocked));
        }
    }
}

#[derive(Debug, Default)]
pub struct OrderFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<&'static str>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
}

/// Orders matching `filter`, newest first, after `after`; `limit + 1` rows.
#[tracing::instrument(name = "db orders.page", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &OrderFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: u32,
) -> Result<Vec<OrderRow>, StoreError> {
    page_query("", filter, after, limit)
        .build_query_as()
        .fetch_all(db)
        .await
        .map_err(StoreError::from)
}

/// The order list query, every value bound; `prefix` is "" to run it, "EXPLAIN " to see its plan.
pub fn page_query(
    prefix: &str,
    filter: &OrderFilter,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: u32,
) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "{prefix}SELECT {ORDER_COLUMNS} FROM orders WHERE true"
    ));
    if let Some(customer) = filter.customer_id {
        q.push(" AND customer_id = ").push_bind(customer);
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(from) = filter.created_from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.created_to {
        q.push(" AND created_at < ").push_bind(to);
    }
    if let Some((at, id)) = after {
        q.push(" AND (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC")
        .push(limit_sql(limit));
    q
}
