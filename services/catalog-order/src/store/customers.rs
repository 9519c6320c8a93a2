use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct CustomerRow {
    pub id: Uuid,
    pub full_name: String,
    pub phone: String,
    pub address_line: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Set when the account was deleted (`account.deleted`): a tombstone, never written again.
    pub anonymised_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, full_name, phone, address_line, city, postal_code, country, created_at, \
                       updated_at, anonymised_at";

/// The profile of the token's subject, created empty on first use. The row stays locked until the
/// transaction ends, so an [`anonymise`] waits for it (and then scrubs what it wrote) or went
/// first (and the caller sees `anonymised_at` and must refuse).
#[tracing::instrument(name = "db customers.get_or_create", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn get_or_create(db: impl PgExecutor<'_>, id: Uuid) -> Result<CustomerRow, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO customers (id) VALUES ($1)
         ON CONFLICT (id) DO UPDATE SET id = excluded.id
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_one(db)
    .await
    .map_err(StoreError::from)
}

/// The profile if there is one (read-only, for the export).
#[tracing::instrument(name = "db customers.by_id", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<CustomerRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM customers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}

/// Scrub the profile of a deleted account: every personal field emptied, `anonymised_at` set.
/// The row stays (orders reference it); a customer without a profile gets an empty one with
/// `anonymised_at` set, a tombstone, so a request still in flight cannot create one afterwards.
/// Idempotent (the first `anonymised_at` is kept).
#[tracing::instrument(name = "db customers.anonymise", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn anonymise(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (id, anonymised_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET
             full_name = '', phone = '', address_line = '', city = '', postal_code = '',
             country = '', anonymised_at = coalesce(customers.anonymised_at, now()),
             updated_at = now()",
    )
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

pub struct Profile<'a> {
    pub full_name: &'a str,
    pub phone: &'a str,
    pub address_line: &'a str,
    pub city: &'a str,
    pub postal_code: &'a str,
    pub country: &'a str,
}

/// Replace the profile (creating it if needed); `None`, writing nothing, when the customer was
/// anonymised (their account deleted). The upsert locks the row, so it is ordered with
/// [`anonymise`]: before it (and scrubbed by it) or after it (and refused).
#[tracing::instrument(name = "db customers.put", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn put(
    db: impl PgExecutor<'_>,
    id: Uuid,
    p: &Profile<'_>,
) -> Result<Option<CustomerRow>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO customers (id, full_name, phone, address_line, city, postal_code, country)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET
             full_name = excluded.full_name, phone = excluded.phone,
             address_line = excluded.address_line, city = excluded.city,
             postal_code = excluded.postal_code, country = excluded.country, updated_at = now()
         WHERE customers.anonymised_at IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(p.full_name)
    .bind(p.phone)
    .bind(p.address_line)
    .bind(p.city)
    .bind(p.postal_code)
    .bind(p.country)
    .fetch_optional(db)
    .await
    .map_err(StoreError::from)
}
