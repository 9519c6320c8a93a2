//! catalog-order's integration tests, one module per area, linked into one test binary (eight
//! binaries each linked the crate and its dependencies again; on two cores they took most of a
//! rebuild). `support` starts the real `App`; the modules use only what they need of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod capacity;
mod catalog;
mod cli;
mod faults;
mod images;
mod jobs;
mod orders;
mod outbox;
mod payments;
mod plans;
mod replica;
mod search;
mod support;
