//! The names of the NATS headers jobs and events carry, defined once. They are on the wire:
//! running releases read each other's messages, so a name never changes.

/// JetStream's de-duplication id: a second publish with the same id inside the stream's
/// duplicate window is dropped.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The job's id (a DLQ copy or a replay keeps it while getting a [`MSG_ID`] of its own).
pub const JOB_ID: &str = "job-id";
/// The job's kind (`image.thumbnail`); its first token is the family.
pub const JOB_KIND: &str = "job-kind";
/// On a DLQ copy: the attempts the job spent.
pub const JOB_ATTEMPTS: &str = "job-attempts";
/// On a DLQ copy: why the last attempt failed.
pub const JOB_ERROR: &str = "job-error";
/// On a job replayed from the DLQ: the attempts of the dead run, which the new run's continue.
pub const JOB_ATTEMPTS_BEFORE: &str = "job-attempts-before";
/// The id of the request that caused the job: the HTTP header's name.
pub const REQUEST_ID: &str = platform::http::REQUEST_ID;
/// W3C trace context of the span that published the message: the HTTP header's name.
pub const TRACEPARENT: &str = platform::telemetry::TRACEPARENT;
