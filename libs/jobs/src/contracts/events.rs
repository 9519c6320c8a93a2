//! Everything published to `{NS}_EVENTS`, as catalog-order's listener reads it: job status
//! changes and results from the worker, account deletions from auth.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::{ACCOUNT_DELETED_EVENT, AccountDeleted};
use crate::images::{ImageProcessed, PROCESSED_EVENT};
use crate::topology::Topology;

/// Subject suffix of job status changes.
pub const JOB_STATUS_EVENT: &str = "job.status";

/// A job's status change, published to `{ns}.events.job.status` by the consumer runtime
/// ([`crate::runtime`]) and applied by catalog-order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub event_id: Uuid,
    pub job_id: Uuid,
    pub kind: String,
    /// `running`, `succeeded`, `failed` (will be retried) or `dead`.
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    JobStatus(JobEvent),
    ImageProcessed(ImageProcessed),
    AccountDeleted(AccountDeleted),
}

impl Event {
    /// `Ok(None)` for a subject this version does not know (a newer publisher): the listener
    /// leaves it for a newer consumer (`Nak` with a delay), it does not drop it.
    pub fn parse(
        topology: &Topology,
        subject: &str,
        payload: &[u8],
    ) -> Result<Option<Event>, serde_json::Error> {
        Ok(if subject == topology.event_subject(JOB_STATUS_EVENT) {
            Some(Event::JobStatus(serde_json::from_slice(payload)?))
        } else if subject == topology.event_subject(PROCESSED_EVENT) {
            Some(Event::ImageProcessed(serde_json::from_slice(payload)?))
        } else if subject == topology.event_subject(ACCOUNT_DELETED_EVENT) {
            Some(Event::AccountDeleted(serde_json::from_slice(payload)?))
        } else {
            None
        })
    }

    /// What an inbox dedupes on.
    pub fn id(&self) -> Uuid {
        match self {
            Event::JobStatus(e) => e.event_id,
            Event::ImageProcessed(e) => e.event_id,
            Event::AccountDeleted(e) => e.event_id,
        }
    }
}
