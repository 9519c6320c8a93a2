//! The contract of e-mail jobs between catalog-order (orders) and the worker (sends).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Family;

/// The family of e-mail jobs (the worker serves it).
pub const FAMILY: Family = Family {
    name: "email",
    ack_wait: Duration::from_secs(15),
    timeout: Duration::from_secs(30),
    max_deliver: 8,
    max_ack_pending: 64,
};

pub const ORDER_CONFIRMATION_KIND: &str = "email.order_confirmation";

/// Payload of an `email.order_confirmation` job: everything the message says, as it was when the
/// order was placed (the worker has no database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmation {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// The account's address, from the customer's access token.
    pub email: String,
    pub total_cents: i64,
    pub currency: String,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}
