//! Jobs over NATS JetStream (docs/design.md §6): a mechanism, and the contracts of the services
//! built on it.
//!
//! The mechanism names no service: [`topology`] defines the streams, buckets and store, and the
//! consumers of the job families and events a service declares, and [`topology::provision`]
//! creates or updates them idempotently at start-up; [`outbox`] relays a service's outbox table
//! (named by the service); [`runtime`] runs a family's jobs (once, retry, backoff, DLQ) and feeds
//! events to a service's listener; [`schedule`] publishes a service's scheduled entries; [`dlq`]
//! is the dead-letter stream as operators see it; [`headers`] names what travels on a message.
//!
//! [`contracts`] is what two services share: kinds, payloads, event names and the families the
//! kinds run in. Its modules are re-exported at the root (`jobs::images`, …).

pub mod contracts;
pub mod dlq;
pub mod headers;
pub mod outbox;
pub mod runtime;
pub mod schedule;
pub mod topology;

pub use contracts::{accounts, email, events, images, maintenance, payments};
pub use topology::{EventConsumer, Family, Topology, provision};
