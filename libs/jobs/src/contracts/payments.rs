//! The contract of payment jobs: catalog-order publishes a refund when a paid order is
//! cancelled (or a payment succeeds for an order that can no longer take it) and runs it itself,
//! calling its payment provider; the provider's `refund.succeeded` webhook finishes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Family;

/// The family of payment jobs (catalog-order serves it). A provider call is short; a provider
/// that is down is retried with the runtime's backoff (1 s doubling, at most 5 min) for about an
/// hour before the job is dead: a refund outlives an outage an operator would not be paged for.
pub const FAMILY: Family = Family {
    name: "payment",
    ack_wait: Duration::from_secs(15),
    timeout: Duration::from_secs(30),
    max_deliver: 20,
    max_ack_pending: 16,
};

pub const REFUND_KIND: &str = "payment.refund";

/// Payload of a `payment.refund` job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub payment_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_is_retried_for_about_an_hour() {
        let waited: Duration = (1..FAMILY.max_deliver)
            .map(crate::runtime::retry_delay)
            .sum();
        assert!((55..=65).contains(&(waited.as_secs() / 60)), "{waited:?}");
    }
}
