//! SQL of the catalog database. Use cases call these functions (and own the transactions);
//! routes map the rows they get back to response DTOs.
//!
//! Functions on the request path return [`StoreError`]; those only the background paths use
//! (maintenance, the event inbox) return `sqlx::Error`, which their callers turn into a retry.

pub mod categories;
pub mod customers;
mod error;
pub mod idempotency;
pub mod images;
pub mod items;
pub mod jobs;
pub mod orders;
pub mod payments;
pub mod search;

pub use error::StoreError;
use sqlx::PgPool;

/// A transaction on the catalog database; `&mut *tx` is what the store functions take.
pub type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// The connection a store function runs on inside a transaction.
pub type Conn = sqlx::PgConnection;

pub async fn begin(db: &PgPool) -> Result<Tx, StoreError> {
    Ok(db.begin().await?)
}

pub async fn commit(tx: Tx) -> Result<(), StoreError> {
    Ok(tx.commit().await?)
}

/// A read-only transaction that sees one snapshot throughout (REPEATABLE READ), so that what it
/// reads in several statements agrees.
pub async fn begin_snapshot(db: &PgPool) -> Result<Tx, StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
