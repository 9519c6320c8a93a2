//! Jobs over NATS JetStream (docs/design.md §6).
//!
//! [`topology`] is the one definition of every stream, consumer, KV bucket and object store, and
//! [`topology::provision`] creates or updates them idempotently at start-up. The job envelope,
//! the outbox relay and the consumer runtime (retry, backoff, DLQ, idempotency) build on it.

pub mod accounts;
pub mod dlq;
pub mod email;
pub mod events;
pub mod headers;
pub mod images;
pub mod outbox;
pub mod runtime;
pub mod schedule;
pub mod topology;

pub use topology::{EventConsumer, FAMILIES, Family, Topology, provision};
