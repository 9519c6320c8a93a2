//! A payment's states and what each provider event does to them. Events may arrive in any
//! order and more than once: every transition goes forward only, so a late or repeated event
//! changes nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `processing → succeeded → refunded`, `processing → failed`; a `succeeded` after `failed` still
/// wins (the provider took the money), and a refund implies the payment had succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Processing,
    Succeeded,
    Failed,
    Refunded,
}

/// What a provider's webhook says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PaymentEvent {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
}

impl PaymentEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentEvent::PaymentSucceeded => "payment.succeeded",
            PaymentEvent::PaymentFailed => "payment.failed",
            PaymentEvent::RefundSucceeded => "refund.succeeded",
        }
    }
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// The status after `event`, or `None` when the event changes nothing (it is late: the
    /// payment is already past it).
    pub fn after(self, event: PaymentEvent) -> Option<PaymentStatus> {
        use PaymentStatus::*;
        match (self, event) {
            (Processing | Failed, PaymentEvent::PaymentSucceeded) => Some(Succeeded),
            (Processing, PaymentEvent::PaymentFailed) => Some(Failed),
            (Processing | Succeeded | Failed, PaymentEvent::RefundSucceeded) => Some(Refunded),
            _ => None,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "processing" => Ok(PaymentStatus::Processing),
            "succeeded" => Ok(PaymentStatus::Succeeded),
            "failed" => Ok(PaymentStatus::Failed),
            "refunded" => Ok(PaymentStatus::Refunded),
            other => Err(format!("{other:?} is not a payment status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentEvent::*;
    use super::PaymentStatus::*;
    use super::*;

    #[test]
    fn every_order_of_events_ends_in_the_furthest_state() {
        let events = [PaymentSucceeded, PaymentFailed, RefundSucceeded];
        // Every permutation of every subset, applied from `processing`.
        let mut orders: Vec<Vec<PaymentEvent>> = vec![vec![]];
        for _ in 0..events.len() {
            let longer: Vec<Vec<PaymentEvent>> = orders
                .iter()
                .flat_map(|o| {
                    events
                        .iter()
                        .filter(|e| !o.contains(e))
                        .map(move |e| [o.clone(), vec![*e]].concat())
                })
                .collect();
            orders.extend(longer);
        }
        for order in orders {
            let end = order
                .iter()
                .fold(Processing, |s, e| s.after(*e).unwrap_or(s));
            let expected = if order.contains(&RefundSucceeded) {
                Refunded
            } else if order.contains(&PaymentSucceeded) {
                Succeeded
            } else if order.contains(&PaymentFailed) {
                Failed
            } else {
                Processing
            };
            assert_eq!(end, expected, "{order:?}");
        }
    }

    #[test]
    fn a_repeated_event_changes_nothing() {
        for e in [PaymentSucceeded, PaymentFailed, RefundSucceeded] {
            let once = Processing.after(e).unwrap();
            assert_eq!(once.after(e), None, "{e:?}");
        }
    }

    #[test]
    fn statuses_and_events_read_back_what_they_write() {
        for s in [Processing, Succeeded, Failed, Refunded] {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(s));
        }
        for e in [PaymentSucceeded, PaymentFailed, RefundSucceeded] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
    }
}
