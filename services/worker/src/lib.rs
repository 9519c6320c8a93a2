//! Storefront worker: consumes jobs from NATS JetStream, runs the scheduler. Owns no database.

pub mod app;
pub mod email;
pub mod leader;
pub mod settings;
pub mod thumbnails;

/// Name used in logs, metrics and the NATS connection.
pub const SERVICE: &str = "worker";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
