//! Storefront auth service: accounts, passwords, sessions and signing keys (docs/design.md §4, §5).

pub mod accounts;
pub mod app;
pub mod domain;
pub mod keys;
pub mod maintenance;
pub mod metrics;
pub mod passwords;
pub mod recovery;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod store;
pub mod verification;

/// Name used in logs, metrics and the NATS connection.
pub const SERVICE: &str = "auth";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `auth` database's migrations, embedded from `migrations/auth/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");
