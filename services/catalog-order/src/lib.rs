//! Storefront catalog and orders service: categories, items, customers, orders, jobs.

pub mod app;
pub mod settings;

/// Name used in logs, metrics and the NATS connection.
pub const SERVICE: &str = "catalog-order";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `catalog` database's migrations, embedded from `migrations/catalog/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/catalog");
