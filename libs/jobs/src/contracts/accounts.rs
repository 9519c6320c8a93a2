//! The contract of account events between auth (publishes) and catalog-order (applies).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Subject prefix of every account event (`{ns}.events.account.…`): a consumer filtering on
/// `account.>` gets them all.
pub const ACCOUNT_EVENTS: &str = "account";

/// Subject suffix (`{ns}.events.account.deleted`) of an account deleted at its owner's request or
/// by an admin (docs/design.md §4 "Personal data").
pub const ACCOUNT_DELETED_EVENT: &str = "account.deleted";

/// Payload of `account.deleted`: the services that keep data about the user anonymise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDeleted {
    /// The outbox row's id, also the message's `Nats-Msg-Id`; inboxes dedupe on it.
    pub event_id: Uuid,
    pub user_id: Uuid,
}
