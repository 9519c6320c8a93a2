use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `pending → paid → shipped`, and `pending | paid → cancelled`. Nothing leaves `shipped` or
/// `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Paid) | (Paid, Shipped) | (Pending, Cancelled) | (Paid, Cancelled)
        )
    }

    /// A customer cancels their own order until it ships (a paid one is refunded); admins may
    /// cancel whatever [`can_become`](Self::can_become) `Cancelled`.
    pub fn customer_may_cancel(self) -> bool {
        matches!(self, OrderStatus::Pending | OrderStatus::Paid)
    }

    /// Cancelling returns the order's items to stock.
    pub fn restocks(next: OrderStatus) -> bool {
        next == OrderStatus::Cancelled
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(OrderStatus::Pending),
            "paid" => Ok(OrderStatus::Paid),
            "shipped" => Ok(OrderStatus::Shipped),
            "cancelled" => Ok(OrderStatus::Cancelled),
            other => Err(format!("{other:?} is not an order status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let all = [Pending, Paid, Shipped, Cancelled];
        let allowed = [
            (Pending, Paid),
            (Paid, Shipped),
            (Pending, Cancelled),
            (Paid, Cancelled),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn customers_cancel_until_shipping_and_cancelling_restocks() {
        assert!(Pending.customer_may_cancel());
        assert!(Paid.customer_may_cancel());
        for other in [Shipped, Cancelled] {
            assert!(!other.customer_may_cancel(), "{other}");
        }
        assert!(super::OrderStatus::restocks(Cancelled));
        for other in [Pending, Paid, Shipped] {
            assert!(!super::OrderStatus::restocks(other), "{other}");
        }
    }

    #[test]
    fn statuses_read_back_as_they_are_written() {
        for status in [Pending, Paid, Shipped, Cancelled] {
            assert_eq!(status.as_str().parse::<super::OrderStatus>(), Ok(status));
        }
        assert!("refunded".parse::<super::OrderStatus>().is_err());
    }
}
