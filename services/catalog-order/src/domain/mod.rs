//! Types that cannot hold invalid values: parse once at the edge, trust afterwards.

mod job_progress;
mod money;
mod order;
mod order_status;
mod payment;
mod search;
mod text;

pub use job_progress::{JobProgress, JobStatus};
pub use money::{Currency, Money, PriceCents};
pub use order::{DraftLine, OrderDraft, PricedLine, PricedOrder, PricingError, StockedItem, price};
pub use order_status::OrderStatus;
pub use payment::{PaymentEvent, PaymentStatus};
pub use search::{SearchText, SearchTextError};
pub use text::{Name, Sku, Slug};

/// Quantity of one order line.
pub const MAX_QUANTITY: u32 = 1000;
/// Lines of one order.
pub const MAX_LINES: usize = 100;
