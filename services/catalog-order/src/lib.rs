//! Storefront catalog and orders service: categories, items, customers, orders (docs/design.md §4).

pub mod app;
pub mod changes;
pub mod domain;
pub mod image_backup;
pub mod maintenance;
pub mod payments;
pub mod routes;
pub mod seed;
pub mod settings;
pub mod state;
pub mod store;
pub mod usecases;

/// Name used in logs, metrics and the NATS connection.
pub const SERVICE: &str = "catalog-order";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `catalog` database's migrations, embedded from `migrations/catalog/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/catalog");
