//! Everything published to `{NS}_EVENTS` that catalog-order reads: job status changes from every
//! consumer runtime, results from the worker, account deletions from auth.

use uuid::Uuid;

use super::accounts::{ACCOUNT_DELETED_EVENT, AccountDeleted};
use super::images::{ImageProcessed, PROCESSED_EVENT};
use crate::runtime::FromEvent;
/// A job's status change; defined by the runtime that publishes it, named here too because it is
/// one of the events catalog-order reads.
pub use crate::runtime::{JOB_STATUS_EVENT, JobEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    JobStatus(JobEvent),
    ImageProcessed(ImageProcessed),
    AccountDeleted(AccountDeleted),
}

impl FromEvent for Event {
    /// `Ok(None)` for an event this version does not know (a newer publisher): the listener
    /// leaves it for a newer consumer (`Nak` with a delay), it does not drop it.
    fn from_event(name: &str, payload: &[u8]) -> Result<Option<Event>, serde_json::Error> {
        Ok(match name {
            JOB_STATUS_EVENT => Some(Event::JobStatus(serde_json::from_slice(payload)?)),
            PROCESSED_EVENT => Some(Event::ImageProcessed(serde_json::from_slice(payload)?)),
            ACCOUNT_DELETED_EVENT => Some(Event::AccountDeleted(serde_json::from_slice(payload)?)),
            _ => None,
        })
    }
}

impl Event {
    /// What an inbox dedupes on.
    pub fn id(&self) -> Uuid {
        match self {
            Event::JobStatus(e) => e.event_id,
            Event::ImageProcessed(e) => e.event_id,
            Event::AccountDeleted(e) => e.event_id,
        }
    }
}
