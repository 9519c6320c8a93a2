//! Storefront auth service: accounts, passwords, sessions and signing keys.

pub mod app;
pub mod settings;

/// Name used in logs, metrics and the NATS connection.
pub const SERVICE: &str = "auth";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `auth` database's migrations, embedded from `migrations/auth/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");
