//! One delivery of a job: the done marker checked first, the handler run under a deadline with
//! in-progress acks, then success (marker, `succeeded`), a retry (`failed`, `Nak` with a delay)
//! or a dead letter (`dead`), each reported as a status event.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, kv};
use platform::backoff::Backoff;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    Handler, JOB_STATUS_EVENT, Job, JobError, JobEvent, JobMetrics, attempts_before, dead_letter,
    header, publish_event, retry_delay,
};
use crate::headers;
use crate::topology::{Family, Topology};

/// What the handling of a family's deliveries needs; one per [`spawn_family`](super::spawn_family).
pub(super) struct Runtime<H> {
    pub(super) js: jetstream::Context,
    pub(super) topology: Topology,
    pub(super) family: Family,
    pub(super) handler: Arc<H>,
    /// KV `{ns}_jobs_done`: the ids of jobs whose effect happened.
    pub(super) done: kv::Store,
    pub(super) metrics: JobMetrics,
}

impl<H: Handler> Runtime<H> {
    /// Handle one delivery: parse it, run it once under its own span, report and settle it.
    pub(super) async fn process(&self, message: jetstream::Message) {
        let delivery = message.info().map(|i| i.delivered).unwrap_or(1);
        let attempt = attempts_before(message.headers.as_ref()).saturating_add(delivery);
        let mut job = match parse(&message, attempt, delivery) {
            Ok(job) => job,
            Err(e) => {
                let kind = header(&message, headers::JOB_KIND).unwrap_or_else(|| "unknown".into());
                dead_letter::delivery(
                    &self.js,
                    &self.topology,
                    &self.metrics,
                    &message,
                    &kind,
                    attempt,
                    &e,
                )
                .await;
                return;
            }
        };
        // One span per delivery, a child of whoever caused the job (the outbox relay's publish);
        // what the job publishes carries this span on.
        let span = tracing::info_span!(
            "job",
            otel.name = %format!("job {}", job.kind),
            otel.kind = "consumer",
            job_id = %job.id,
            kind = %job.kind,
            attempt = job.attempt,
            request_id = job.request_id.as_deref().unwrap_or(""),
        );
        platform::telemetry::set_parent(&span, job.traceparent.as_deref());
        if let Some(traceparent) = platform::telemetry::traceparent_of(&span) {
            job.traceparent = Some(traceparent);
        }
        if let Err(e) = self.run(&message, &job).instrument(span.clone()).await {
            // Bookkeeping failed (NATS down): leave the message unacknowledged; it is redelivered
            // after ack_wait and the done marker keeps its effect single (unless the marker itself
            // could not be written within `record_done`'s retries).
            let _entered = span.enter();
            tracing::warn!(job_id = %job.id, error = format!("{e:#}"), "job bookkeeping failed");
        }
    }

    async fn run(&self, message: &jetstream::Message, job: &Job) -> anyhow::Result<()> {
        if self.done.get(job.id.to_string()).await?.is_some() {
            // Done before, but maybe its `succeeded` event was lost with the ack: say it again
            // (same event id, so whoever applied it already ignores it).
            self.event(job, "succeeded", None).await?;
            message.ack().await.map_err(anyhow::Error::msg)?;
            return Ok(());
        }
        self.event(job, "running", None).await?;
        let started = std::time::Instant::now();
        let handler = self.handler.clone();
        let owned = job.clone();
        // A panicking handler is a failed attempt, not a dead worker; so is one still busy at the
        // family's timeout.
        let mut task = tokio::spawn(
            async move { handler.handle(&owned).await }.instrument(tracing::Span::current()),
        );
        let deadline = tokio::time::sleep(self.family.timeout);
        tokio::pin!(deadline);
        let mut heartbeat = tokio::time::interval(self.family.ack_wait / 3);
        heartbeat.tick().await;
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break match joined {
                    Ok(outcome) => outcome,
                    Err(e) => Err(JobError::Retry(format!("handler panicked: {e}"))),
                },
                _ = &mut deadline => {
                    task.abort();
                    break Err(JobError::Retry(format!(
                        "no answer within {} s",
                        self.family.timeout.as_secs()
                    )));
                }
                _ = heartbeat.tick() => {
                    // Still working: keep the job from being handed to another worker.
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(job_id = %job.id, error = %e, "in-progress ack failed");
                    }
                }
            }
        };
        self.metrics
            .duration
            .with_label_values(&[&job.kind])
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                self.record_done(message, job).await?;
                self.event(job, "succeeded", None).await?;
                message.ack().await.map_err(anyhow::Error::msg)?;
                self.count(job, "succeeded");
                tracing::info!(
                    latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "job succeeded"
                );
            }
            Err(JobError::Retry(error)) if job.delivery < self.family.max_deliver => {
                self.event(job, "failed", Some(&error)).await?;
                message
                    .ack_with(AckKind::Nak(Some(retry_delay(job.delivery))))
                    .await
                    .map_err(anyhow::Error::msg)?;
                self.count(job, "retried");
            }
            Err(JobError::Retry(error) | JobError::Fail(error)) => {
                dead_letter::delivery(
                    &self.js,
                    &self.topology,
                    &self.metrics,
                    message,
                    &job.kind,
                    job.attempt,
                    &error,
                )
                .await;
                self.event(job, "dead", Some(&error)).await?;
                self.count(job, "dead");
            }
        }
        Ok(())
    }

    /// Write `job`'s done marker after its handler succeeded. The effect has happened (an e-mail
    /// sent), so a failed write must not simply leave the job to be redelivered and run again: a
    /// NATS restart makes it fail for a few seconds. Keep trying (100 ms doubling to 2 s), with an
    /// in-progress ack before each try so the job is not handed to another worker, for up to
    /// `ack_wait`; past that a redelivery is due anyway, and the error goes up as before.
    async fn record_done(&self, message: &jetstream::Message, job: &Job) -> anyhow::Result<()> {
        let give_up = tokio::time::Instant::now() + self.family.ack_wait;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            // Best effort: NATS may be the very thing that is down.
            let _ = message.ack_with(AckKind::Progress).await;
            let error = match self.done.put(job.id.to_string(), "1".into()).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let delay = backoff.next_delay();
            if tokio::time::Instant::now() + delay > give_up {
                return Err(error).context("recording the job as done");
            }
            tracing::warn!(
                job_id = %job.id,
                error = %error,
                "recording the job as done failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn count(&self, job: &Job, outcome: &str) {
        self.metrics
            .processed
            .with_label_values(&[&job.kind, outcome])
            .inc();
    }

    async fn event(&self, job: &Job, status: &str, error: Option<&str>) -> anyhow::Result<()> {
        // A job succeeds once, so its `succeeded` event has one id however often it is sent.
        let event_id = if status == "succeeded" {
            Uuid::new_v5(&job.id, b"succeeded")
        } else {
            Uuid::now_v7()
        };
        let event = JobEvent {
            event_id,
            job_id: job.id,
            kind: job.kind.clone(),
            status: status.to_owned(),
            attempts: job.attempt,
            error: error.map(str::to_owned),
        };
        publish_event(
            &self.js,
            &self.topology,
            JOB_STATUS_EVENT,
            &event.event_id.to_string(),
            Some(job),
            &event,
        )
        .await
    }
}

fn parse(message: &jetstream::Message, attempt: i64, delivery: i64) -> Result<Job, String> {
    // `job-id`; the message id is the same for fresh jobs but differs for DLQ replays.
    let id = header(message, headers::JOB_ID)
        .or_else(|| header(message, headers::MSG_ID))
        .and_then(|v| v.parse::<Uuid>().ok())
        .ok_or("the message has no job id (job-id header)")?;
    let kind = header(message, headers::JOB_KIND).ok_or("the message has no job-kind header")?;
    let payload = serde_json::from_slice(&message.payload)
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    Ok(Job {
        id,
        kind,
        payload,
        attempt,
        delivery,
        request_id: header(message, headers::REQUEST_ID),
        traceparent: header(message, headers::TRACEPARENT),
    })
}
