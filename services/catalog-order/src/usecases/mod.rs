//! What catalog-order does, one function per thing a client asks for (docs/design.md §2,
//! "Layers"). A use case opens and commits the transaction, calls `store` for the SQL and
//! `domain` for the rules, writes the outbox row and runs the `Idempotency-Key` steps; it
//! knows nothing of HTTP. `routes` parses a request, calls one of these and maps the result.

pub mod catalog;
pub mod customers;
mod error;
pub mod idempotency;
pub mod images;
pub mod jobs;
pub mod orders;
pub mod payments;

pub use error::Error;

/// Who and what caused a change: carried into the jobs it enqueues.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub request_id: &'a str,
    pub traceparent: Option<&'a str>,
}
