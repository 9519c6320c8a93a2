//! SQL of payments and of the provider events applied to them.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub provider: String,
    pub client_secret: String,
    pub email: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An order's latest payment, as the order shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PaymentBrief {
    pub order_id: Uuid,
    pub id: Uuid,
    pub status: String,
}

const COLUMNS: &str = "id, order_id, status, amount_cents, currency, provider, client_secret, \
                       email, created_at, updated_at";

/// The order's payment that is still processing, if any.
#[tracing::instrument(name = "db payments.open_of", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn open_of(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> Result<Option<PaymentRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE order_id = $1 AND status = 'processing'"
    )))
    .bind(order_id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// What [`insert`] writes.
#[derive(Debug, Clone)]
pub struct NewPaymentRow<'a> {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub provider: &'a str,
    pub client_secret: &'a str,
    pub email: &'a str,
}

#[tracing::instrument(name = "db payments.insert", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    p: &NewPaymentRow<'_>,
) -> Result<PaymentRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payments (id, order_id, status, amount_cents, currency, provider, client_secret, email)
         VALUES ($1, $2, 'processing', $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(p.id)
    .bind(p.order_id)
    .bind(p.amount_cents)
    .bind(p.currency)
    .bind(p.provider)
    .bind(p.client_secret)
    .bind(p.email)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db payments.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<PaymentRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db payments.lock", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<PaymentRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

#[tracing::instrument(name = "db payments.set_status", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
) -> Result<PaymentRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE payments SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

/// The order's payments that took money and have not given it back.
#[tracing::instrument(name = "db payments.succeeded_of", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn succeeded_of(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1 AND status = 'succeeded'")
        .bind(order_id)
        .fetch_all(db)
        .await
        .map_err(StoreError::from)
}

/// The latest payment of each of `order_ids` that has one, in one query.
#[tracing::instrument(name = "db payments.latest_of", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn latest_of(
    db: impl PgExecutor<'_>,
    order_ids: &[Uuid],
) -> Result<Vec<PaymentBrief>, StoreError> {
    sqlx::query_as(
        "SELECT DISTINCT ON (order_id) order_id, id, status FROM payments
         WHERE order_id = ANY($1) ORDER BY order_id, created_at DESC, id DESC",
    )
    .bind(order_ids)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}

/// Remember a provider event; `false` when it was applied before (its id is known).
#[tracing::instrument(name = "db payments.record_event", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn record_event(
    db: impl PgExecutor<'_>,
    id: &str,
    kind: &str,
    payment_id: Uuid,
) -> Result<bool, StoreError> {
    sqlx::query(
        "INSERT INTO payment_events (id, type, payment_id) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(payment_id)
    .execute(db)
    .await
    .map(|r| r.rows_affected() == 1)
    .map_err(StoreError::from)
}

/// Forget a deleted customer's address on their payments.
#[tracing::instrument(name = "db payments.scrub_customer", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn scrub_customer(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET email = '' WHERE email <> ''
         AND order_id IN (SELECT id FROM orders WHERE customer_id = $1)",
    )
    .bind(customer_id)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

/// Forget provider events received before `now - keep` (at least a week: providers redeliver for
/// days), in batches; returns how many.
#[tracing::instrument(name = "db payments.purge_events", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge_events(
    db: &sqlx::PgPool,
    now: time::OffsetDateTime,
    keep: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let aged = platform::db::Aged {
        table: "payment_events",
        key: "id",
        at: "received_at",
    };
    platform::db::delete_before(db, aged, now - keep.max(jobs::topology::EVENTS_MAX_AGE)).await
}

/// Every payment of a customer's orders, oldest first (the export).
#[tracing::instrument(name = "db payments.of_customer", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn of_customer(
    db: impl PgExecutor<'_>,
    customer_id: Uuid,
) -> Result<Vec<PaymentRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments
         WHERE order_id IN (SELECT id FROM orders WHERE customer_id = $1)
         ORDER BY created_at, id"
    )))
    .bind(customer_id)
    .fetch_all(db)
    .await
    .map_err(StoreError::from)
}
