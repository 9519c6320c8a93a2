//! The job contracts: what a service that publishes a job or an event and the service that runs
//! or reads it agree on, compiled by both. Data only — kinds and event names, payloads, where an
//! image's files live, and the family each job kind runs in. The rest of this crate (topology,
//! outbox, runtime, scheduler, DLQ) is the mechanism and names none of them.
//!
//! A family's definition (consumer limits, handler timeout) is part of its contract: every service
//! that serves the family or publishes to it provisions the family's consumer, so it exists before
//! the first job is published, and they must all provision it alike.
//!
//! | module | between | kinds, events |
//! |---|---|---|
//! | [`images`] | catalog-order → worker → catalog-order | `image.thumbnail`, `image.processed` |
//! | [`email`] | catalog-order, auth → worker | `email.order_confirmation`, `email.verify_address`, `email.password_reset` |
//! | [`maintenance`] | worker's scheduler → catalog-order, auth | `catalog.*`, `auth.*` |
//! | [`accounts`] | auth → catalog-order | `account.deleted` |
//! | [`payments`] | catalog-order → catalog-order | `payment.refund` |
//! | [`events`] | every runtime, worker, auth → catalog-order | every event catalog-order reads |

pub mod accounts;
pub mod email;
pub mod events;
pub mod images;
pub mod maintenance;
pub mod payments;

use crate::Family;

/// Every family of the contracts.
pub const FAMILIES: [Family; 5] = [
    images::FAMILY,
    email::FAMILY,
    payments::FAMILY,
    maintenance::CATALOG_FAMILY,
    maintenance::AUTH_FAMILY,
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_family_retries_at_least_once_and_times_out_before_it_gives_up() {
        for f in FAMILIES {
            assert!(f.max_deliver >= 2, "{}", f.name);
            assert!(f.ack_wait >= Duration::from_secs(3), "{}", f.name);
            assert!(f.timeout >= f.ack_wait, "{}", f.name);
        }
    }

    #[test]
    fn every_kind_belongs_to_its_family() {
        let topology = crate::Topology::new(platform::nats::Namespace::new("shop").unwrap())
            .with_families(FAMILIES);
        let scheduled = maintenance::CatalogJob::ALL
            .iter()
            .map(|j| (j.kind(), maintenance::CATALOG_FAMILY))
            .chain(
                maintenance::AuthJob::ALL
                    .iter()
                    .map(|j| (j.kind(), maintenance::AUTH_FAMILY)),
            );
        for (kind, family) in [
            (images::THUMBNAIL_KIND, images::FAMILY),
            (email::ORDER_CONFIRMATION_KIND, email::FAMILY),
            // Account e-mails (auth).
            (email::VERIFY_ADDRESS_KIND, email::FAMILY),
            (email::PASSWORD_RESET_KIND, email::FAMILY),
            (email::PAYMENT_RECEIPT_KIND, email::FAMILY),
            (email::REFUND_KIND, email::FAMILY),
            (payments::REFUND_KIND, payments::FAMILY),
        ]
        .into_iter()
        .chain(scheduled)
        {
            assert_eq!(topology.family_of(kind), Some(family), "{kind}");
        }
    }
}
