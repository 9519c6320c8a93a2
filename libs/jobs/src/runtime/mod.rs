//! The consumer runtime: pulls a family's jobs, applies each job's effect once, retries with
//! exponential delay, dead-letters what fails for good, and reports every status change as an
//! event that catalog-order applies to its `jobs` table.
//!
//! - Idempotency: a job id in KV `{ns}_jobs_done` means its effect happened; a redelivery is
//!   acknowledged without running the handler again. A marker that cannot be written after a
//!   success (NATS restarting) is retried, the job kept with in-progress acks, for up to `ack_wait`.
//! - Retry: a retryable error (or a handler still busy at the family's `timeout`) `Nak`s with 1 s,
//!   2 s, 4 s … (at most 5 min) until `max_deliver`.
//! - Liveness: while a handler runs, the job is kept with an in-progress ack every third of
//!   `ack_wait`; a worker that dies stops sending them and the job goes to another worker after
//!   `ack_wait`.
//! - Concurrency: at most `concurrency` jobs of a family at once per process, and no more fetched
//!   than that (a fetched job's `ack_wait` is already running).
//! - Dead letters: a permanent error, or the last attempt, copies the message (headers, payload,
//!   attempts, last error) to `{ns}.dlq.<kind>` and terminates it. A job whose worker died on every
//!   delivery is caught by [`spawn_max_delivery_watch`] instead.
//! - Replays: a job replayed from the DLQ ([`crate::dlq::replay`]) keeps its id; its attempts, as
//!   reported, continue after the dead run's ([`headers::JOB_ATTEMPTS_BEFORE`]), while `max_deliver` and
//!   the retry delays count this run's deliveries afresh.
//! - Shutdown: the job in hand is finished before the loop stops.
//!
//! Where each part lives: the handling of one delivery (once, heartbeat, retry, status events)
//! in `handling.rs`; the pull loops of job families and of events in `consumer.rs`; every copy
//! into the DLQ, from a failed delivery or a max-deliveries advisory, in `dead_letter.rs`.

use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;
use platform::backoff::Backoff;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::headers;
use crate::topology::Topology;

mod consumer;
mod dead_letter;
mod handling;

pub use consumer::{UNKNOWN_EVENT_DELAY, spawn_event_listener_on, spawn_family};
pub use dead_letter::spawn_max_delivery_watch;

/// A job as a handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    /// The job's attempt, as its status events report it: 1 on the first delivery; a run
    /// replayed from the DLQ continues after the dead run's attempts ([`headers::JOB_ATTEMPTS_BEFORE`]).
    pub attempt: i64,
    /// This run's delivery (1 on its first): what `max_deliver` and the retry delay count.
    pub delivery: i64,
    pub request_id: Option<String>,
    /// W3C trace context of the request that caused the job, passed on to what it publishes.
    pub traceparent: Option<String>,
}

/// Subject suffix of job status changes.
pub const JOB_STATUS_EVENT: &str = "job.status";

/// A job's status change, published to `{ns}.events.job.status` by the runtime at every step of
/// a job (`running`, then `succeeded`, `failed` or `dead`) for whoever keeps jobs' states.
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

/// The events a listener ([`spawn_event_listener_on`]) reads: the service that reads them says
/// which it knows and how to read each.
pub trait FromEvent: Sized + Send + 'static {
    /// The event named `name` (the subject below `{ns}.events.`, `job.status`); `Ok(None)` for a
    /// name this version does not know, which the listener leaves for a newer consumer.
    fn from_event(name: &str, payload: &[u8]) -> Result<Option<Self>, serde_json::Error>;
}

/// Why a job did not succeed.
#[derive(Debug, Clone)]
pub enum JobError {
    /// Worth another attempt (a timeout, a dependency down).
    Retry(String),
    /// Will never succeed (a corrupt input): dead-lettered at once.
    Fail(String),
}

impl JobError {
    /// A kind of its family this version does not know: it comes from a newer producer (a new
    /// worker's scheduler during a rolling upgrade, while old replicas still consume the family).
    /// Failing it would dead-letter a normal job and fire DeadLetterQueueNotEmpty; a retry hands
    /// it back, and a new replica picks it up within `max_deliver`.
    pub fn unknown_kind(kind: &str) -> JobError {
        JobError::Retry(format!("unknown job kind {kind}: left for a newer replica"))
    }
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, job: &Job) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// `jobs_processed_total{kind,outcome}`, `job_duration_seconds{kind}`, `jobs_dead_lettered_total`.
#[derive(Clone)]
pub struct JobMetrics {
    processed: IntCounterVec,
    duration: HistogramVec,
    dead_lettered: IntCounter,
}

impl JobMetrics {
    pub fn register(metrics: &platform::metrics::Metrics) -> Result<Self, prometheus::Error> {
        let m = JobMetrics {
            processed: IntCounterVec::new(
                Opts::new(
                    "jobs_processed_total",
                    "Job deliveries handled, by kind and outcome.",
                ),
                &["kind", "outcome"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("job_duration_seconds", "Time a handler took, by kind.")
                    .buckets(vec![
                        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ]),
                &["kind"],
            )?,
            dead_lettered: IntCounter::new(
                "jobs_dead_lettered_total",
                "Jobs moved to the dead-letter stream.",
            )?,
        };
        metrics.register(Box::new(m.processed.clone()))?;
        metrics.register(Box::new(m.duration.clone()))?;
        metrics.register(Box::new(m.dead_lettered.clone()))?;
        Ok(m)
    }
}

/// How a failed job is retried: 1 s, 2 s, 4 s … at most 5 minutes.
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// Delay before retry `attempt` (1-based): 1 s, 2 s, 4 s … at most 5 minutes.
pub fn retry_delay(attempt: i64) -> Duration {
    RETRY.nth(u32::try_from(attempt).unwrap_or(if attempt < 0 { 0 } else { u32::MAX }))
}

/// Publish an event to `{ns}.events.<name>` and wait for JetStream's ack. `message_id` dedupes
/// re-publishes (derive it from the job id for an effect's event); the job's request id and trace
/// context travel along.
pub async fn publish_event(
    js: &jetstream::Context,
    topology: &Topology,
    name: &str,
    message_id: &str,
    job: Option<&Job>,
    event: &impl Serialize,
) -> anyhow::Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, message_id);
    if let Some(job) = job {
        if let Some(request_id) = &job.request_id {
            headers.insert(headers::REQUEST_ID, request_id.as_str());
        }
        if let Some(traceparent) = &job.traceparent {
            headers.insert(headers::TRACEPARENT, traceparent.as_str());
        }
    }
    js.publish_with_headers(
        topology.event_subject(name),
        headers,
        serde_json::to_vec(event)?.into(),
    )
    .await?
    .await
    .with_context(|| format!("publishing a {name} event"))?;
    Ok(())
}

fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Attempts a job spent before this run ([`headers::JOB_ATTEMPTS_BEFORE`], set by
/// [`crate::dlq::replay`] from the dead run's `job-attempts`), 0 when absent or unreadable: the
/// replayed run's attempts continue after them, so catalog-order sees a later attempt and lets
/// the job leave `dead`. JetStream's own delivery count starts at 1 again.
fn attempts_before(headers: Option<&HeaderMap>) -> i64 {
    headers
        .and_then(|h| h.get(headers::JOB_ATTEMPTS_BEFORE))
        .and_then(|v| v.as_str().trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(4), Duration::from_secs(8));
        assert_eq!(retry_delay(30), Duration::from_secs(300));
        assert_eq!(retry_delay(0), Duration::from_secs(1));
    }
}
