//! The contract of e-mail jobs between their producers (catalog-order: orders; auth: accounts)
//! and the worker (sends).

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

// --- Account e-mails: auth (its `job_outbox`) → worker ---------------------------------------

/// "Confirm your address": sent at registration and on `POST /v1/auth/email/verify/resend`.
pub const VERIFY_ADDRESS_KIND: &str = "email.verify_address";
/// "Reset your password": sent on `POST /v1/auth/password/forgot` for a known address.
pub const PASSWORD_RESET_KIND: &str = "email.password_reset";

/// Payload of `email.verify_address` and `email.password_reset`. The link holds a single-use
/// token; auth keeps only its hash, and drops the link from its outbox row once published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLink {
    pub email: String,
    /// `…?token=<token>`, on the site's page for the purpose.
    pub link: String,
    /// How long the link works from when it was sent, for the message's text.
    pub valid_for_minutes: u32,
}

// --- Payment e-mails: catalog-order (its outbox, with the webhook's effect) → worker ----------

/// "We received your payment": the order was paid.
pub const PAYMENT_RECEIPT_KIND: &str = "email.payment_receipt";
/// "Your money is on its way back": a payment was refunded.
pub const REFUND_KIND: &str = "email.refund";

/// Payload of `email.payment_receipt` and `email.refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentNotice {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    /// The address of the account that opened the payment.
    pub email: String,
    pub amount_cents: i64,
    pub currency: String,
}
