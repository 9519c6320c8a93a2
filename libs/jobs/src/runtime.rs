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
//!   reported, continue after the dead run's ([`ATTEMPTS_BEFORE_HEADER`]), while `max_deliver` and
//!   the retry delays count this run's deliveries afresh.
//! - Shutdown: the job in hand is finished before the loop stops.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, kv};
use futures_util::StreamExt;
use platform::shutdown::Shutdown;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

pub use crate::events::JobEvent;
use crate::events::{Event, JOB_STATUS_EVENT};
use crate::topology::{Family, Topology};

/// A job as a handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    /// The job's attempt, as its status events report it: 1 on the first delivery; a run
    /// replayed from the DLQ continues after the dead run's attempts ([`ATTEMPTS_BEFORE_HEADER`]).
    pub attempt: i64,
    /// This run's delivery (1 on its first): what `max_deliver` and the retry delay count.
    pub delivery: i64,
    pub request_id: Option<String>,
    /// W3C trace context of the request that caused the job, passed on to what it publishes.
    pub traceparent: Option<String>,
}

/// Why a job did not succeed.
#[derive(Debug, Clone)]
pub enum JobError {
    /// Worth another attempt (a timeout, a dependency down).
    Retry(String),
    /// Will never succeed (a corrupt input): dead-lettered at once.
    Fail(String),
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, job: &Job) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Attempts a job spent before this run (set by [`crate::dlq::replay`] from the dead run's
/// `job-attempts`): the replayed run's attempts continue after them, so catalog-order sees a later
/// attempt and lets the job leave `dead`. JetStream's own delivery count starts at 1 again.
pub const ATTEMPTS_BEFORE_HEADER: &str = "job-attempts-before";

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

/// Delay before retry `attempt` (1-based): 1 s, 2 s, 4 s … at most 5 minutes.
pub fn retry_delay(attempt: i64) -> Duration {
    let exp = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(2u64.saturating_pow(exp)).min(Duration::from_secs(300))
}

struct Runtime<H> {
    js: jetstream::Context,
    topology: Topology,
    family: Family,
    handler: Arc<H>,
    done: kv::Store,
    metrics: JobMetrics,
}

/// Consume `family`'s jobs with `handler`, `concurrency` at a time, until shutdown; jobs in hand
/// are finished first.
pub fn spawn_family<H: Handler>(
    js: jetstream::Context,
    topology: Topology,
    family: Family,
    handler: Arc<H>,
    concurrency: usize,
    metrics: JobMetrics,
    shutdown: &Shutdown,
) {
    let stop = shutdown.token();
    let concurrency = concurrency.max(1);
    shutdown.spawn("job-consumer", async move {
        if !crate::topology::provision_with_retry(&js, &topology, &stop).await {
            return Ok(());
        }
        let done = js
            .get_key_value(topology.jobs_done_bucket())
            .await
            .context("opening the done-marker bucket")?;
        let runtime = Arc::new(Runtime {
            js: js.clone(),
            topology: topology.clone(),
            family,
            handler,
            done,
            metrics,
        });
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut running = JoinSet::new();
        'pull: while let Some(mut messages) = pull(
            &js,
            &topology.jobs_stream(),
            &topology.consumer_name(&family),
            concurrency,
            &stop,
        )
        .await
        {
            loop {
                while running.try_join_next().is_some() {}
                // A free slot first, then a message: never hold a job nobody works on.
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.context("job slots closed")?,
                    _ = stop.cancelled() => break 'pull,
                };
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = stop.cancelled() => break 'pull,
                };
                match next {
                    Some(Ok(message)) => {
                        let runtime = runtime.clone();
                        running.spawn(async move {
                            runtime.process(message).await;
                            drop(slot);
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(family = family.name, error = %e, "pull failed; re-subscribing");
                        break;
                    }
                    None => break,
                }
            }
        }
        while running.join_next().await.is_some() {}
        Ok(())
    });
}

impl<H: Handler> Runtime<H> {
    async fn process(&self, message: jetstream::Message) {
        let delivery = message.info().map(|i| i.delivered).unwrap_or(1);
        let attempt = attempts_before(message.headers.as_ref()).saturating_add(delivery);
        let mut job = match parse(&message, attempt, delivery) {
            Ok(job) => job,
            Err(e) => {
                let kind = header(&message, "job-kind").unwrap_or_else(|| "unknown".into());
                self.dead_letter(&message, &kind, attempt, &e).await;
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
                self.dead_letter(message, &job.kind, job.attempt, &error)
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
        let mut backoff = Duration::from_millis(100);
        loop {
            // Best effort: NATS may be the very thing that is down.
            let _ = message.ack_with(AckKind::Progress).await;
            let error = match self.done.put(job.id.to_string(), "1".into()).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if tokio::time::Instant::now() + backoff > give_up {
                return Err(error).context("recording the job as done");
            }
            tracing::warn!(
                job_id = %job.id,
                error = %error,
                "recording the job as done failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
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

    /// Copy the message to the DLQ with why and how often it failed, then stop its deliveries.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        kind: &str,
        attempt: i64,
        error: &str,
    ) {
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert("job-attempts", attempt.to_string().as_str());
        headers.insert("job-error", error.replace(['\r', '\n'], " ").as_str());
        // The DLQ copy gets its own id: the original's is still inside the jobs stream's window.
        let original = header(message, "job-id")
            .or_else(|| header(message, "Nats-Msg-Id"))
            .unwrap_or_default();
        let message_id = header(message, "Nats-Msg-Id").unwrap_or_default();
        headers.insert("Nats-Msg-Id", format!("dlq-{message_id}").as_str());
        headers.insert("job-id", original.as_str());
        let published = async {
            self.js
                .publish_with_headers(
                    self.topology.dlq_subject(kind),
                    headers,
                    message.payload.clone(),
                )
                .await?
                .await?;
            anyhow::Ok(())
        }
        .await;
        match published {
            Ok(()) => {
                self.metrics.dead_lettered.inc();
                let _ = message.ack_with(AckKind::Term).await;
                tracing::error!(kind, job_id = %original, attempt, error, "job dead-lettered");
            }
            // Not in the DLQ yet: leave it to be redelivered rather than lose it.
            Err(e) => tracing::error!(error = format!("{e:#}"), "dead-lettering failed"),
        }
    }
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
    headers.insert("Nats-Msg-Id", message_id);
    if let Some(job) = job {
        if let Some(request_id) = &job.request_id {
            headers.insert("x-request-id", request_id.as_str());
        }
        if let Some(traceparent) = &job.traceparent {
            headers.insert("traceparent", traceparent.as_str());
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

/// What JetStream says when a job ran out of deliveries without ever being answered.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: i64,
}

/// Catch jobs whose handler never answered (the worker crashed or hung on every attempt): on
/// JetStream's max-deliveries advisory, move the job to the DLQ, delete it from the work queue
/// (where it would otherwise stay forever) and report it dead. Replicas share the advisories
/// through a queue group.
pub fn spawn_max_delivery_watch(
    js: jetstream::Context,
    topology: Topology,
    metrics: JobMetrics,
    shutdown: &Shutdown,
) {
    let stop = shutdown.token();
    shutdown.spawn("max-delivery-watch", async move {
        let client = js.client();
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*",
            topology.jobs_stream()
        );
        let mut advisories = client
            .queue_subscribe(subject, "max-deliveries".to_owned())
            .await
            .context("subscribing to max-deliveries advisories")?;
        loop {
            let advisory = tokio::select! {
                a = advisories.next() => match a { Some(a) => a, None => return Ok(()) },
                _ = stop.cancelled() => return Ok(()),
            };
            let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) else {
                continue;
            };
            if let Err(e) = exhausted(&js, &topology, &metrics, &advisory).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    seq = advisory.stream_seq,
                    "moving an exhausted job to the DLQ failed"
                );
            }
        }
    });
}

async fn exhausted(
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &JobMetrics,
    advisory: &MaxDeliveries,
) -> anyhow::Result<()> {
    let stream = js.get_stream(topology.jobs_stream()).await?;
    // Already gone: another replica handled this advisory.
    let Ok(message) = stream.get_raw_message(advisory.stream_seq).await else {
        return Ok(());
    };
    let get = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    let job_id = get("job-id")
        .or_else(|| get("Nats-Msg-Id"))
        .unwrap_or_default();
    let kind = get("job-kind").unwrap_or_else(|| "unknown".into());
    // A replayed run's attempts continue after the dead run's, as the runtime reports them.
    let attempts = attempts_before(Some(&message.headers)).saturating_add(advisory.deliveries);
    let error = format!(
        "no answer after {} deliveries (the worker crashed or hung each time)",
        advisory.deliveries
    );
    let mut headers = message.headers.clone();
    headers.insert("job-id", job_id.as_str());
    headers.insert("job-attempts", attempts.to_string().as_str());
    headers.insert("job-error", error.as_str());
    headers.insert(
        "Nats-Msg-Id",
        format!("dlq-{}", get("Nats-Msg-Id").unwrap_or_default()).as_str(),
    );
    js.publish_with_headers(
        topology.dlq_subject(&kind),
        headers,
        message.payload.clone(),
    )
    .await?
    .await?;
    stream.delete_message(advisory.stream_seq).await?;
    metrics.dead_lettered.inc();
    tracing::error!(
        kind,
        job_id,
        deliveries = advisory.deliveries,
        "job exhausted its deliveries; dead-lettered"
    );
    if let Ok(id) = job_id.parse::<Uuid>() {
        let event = JobEvent {
            event_id: Uuid::now_v7(),
            job_id: id,
            kind,
            status: "dead".into(),
            attempts,
            error: Some(error),
        };
        publish_event(
            js,
            topology,
            JOB_STATUS_EVENT,
            &event.event_id.to_string(),
            None,
            &event,
        )
        .await?;
    }
    Ok(())
}

/// How long an event of a subject this version does not know waits before it is delivered again
/// (`Nak` with this delay): a newer producer's event waits for a newer consumer instead of being
/// dropped. The consumer's `max_deliver` ([`crate::topology::EVENTS_MAX_DELIVER`]) ends it.
pub const UNKNOWN_EVENT_DELAY: Duration = Duration::from_secs(300);

/// Apply events from the general events consumer (job status changes, `image.processed`, …) with
/// `apply` until shutdown (catalog-order's side). See [`spawn_event_listener_on`].
pub fn spawn_event_listener<F, Fut>(
    js: jetstream::Context,
    topology: Topology,
    apply: F,
    shutdown: &Shutdown,
) where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let consumer = topology.events_consumer().to_owned();
    spawn_event_listener_on(js, topology, consumer, apply, shutdown);
}

/// Apply the events of the durable consumer `consumer` of the events stream with `apply` until
/// shutdown. `apply` must be idempotent per [`Event::id`]; an event is acknowledged only after it
/// returns `Ok`. An event whose subject this version does not know is not acknowledged but
/// `Nak`ed with [`UNKNOWN_EVENT_DELAY`], so a newer consumer can still apply it. Run it beside
/// [`crate::outbox::spawn_relay`], which provisions the consumers of its topology.
pub fn spawn_event_listener_on<F, Fut>(
    js: jetstream::Context,
    topology: Topology,
    consumer: String,
    apply: F,
    shutdown: &Shutdown,
) where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let stop = shutdown.token();
    shutdown.spawn("event-listener", async move {
        // No provisioning here: the service's outbox relay does it at start, and `pull` waits
        // for the consumer to exist.
        while let Some(mut messages) =
            pull(&js, &topology.events_stream(), &consumer, 64, &stop).await
        {
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    _ = stop.cancelled() => return Ok(()),
                };
                let message = match next {
                    Some(Ok(m)) => m,
                    _ => break,
                };
                let span = tracing::info_span!(
                    "event",
                    otel.name = %format!("apply {}", message.subject),
                    otel.kind = "consumer",
                );
                platform::telemetry::set_parent(&span, header(&message, "traceparent").as_deref());
                match Event::parse(&topology, &message.subject, &message.payload) {
                    Ok(Some(event)) => match apply(event).instrument(span).await {
                        Ok(()) => {
                            let _ = message.ack().await;
                        }
                        // Not acknowledged: redelivered after ack_wait.
                        Err(e) => {
                            tracing::warn!(error = format!("{e:#}"), "applying an event failed")
                        }
                    },
                    // A newer producer's event: leave it for a consumer that knows it.
                    Ok(None) => {
                        tracing::warn!(
                            subject = %message.subject,
                            consumer = %consumer,
                            "event of an unknown subject; not acknowledged, delivered again later"
                        );
                        let _ = message
                            .ack_with(AckKind::Nak(Some(UNKNOWN_EVENT_DELAY)))
                            .await;
                    }
                    Err(e) => {
                        tracing::error!(subject = %message.subject, error = %e, "unreadable event; dropping it");
                        let _ = message.ack_with(AckKind::Term).await;
                    }
                }
            }
        }
        Ok(())
    });
}

/// Start pulling from a durable consumer, retrying with backoff while NATS or the consumer is not
/// there yet; `None` once shutdown begins.
async fn pull(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
    batch: usize,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<async_nats::jetstream::consumer::pull::Stream> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let opened = async {
            let consumer: PullConsumer = js
                .get_stream(stream)
                .await?
                .get_consumer(consumer)
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::Ok(
                consumer
                    .stream()
                    .max_messages_per_batch(batch)
                    .messages()
                    .await?,
            )
        };
        tokio::select! {
            opened = opened => match opened {
                Ok(messages) => return Some(messages),
                Err(e) => tracing::warn!(consumer, error = format!("{e:#}"), "cannot pull yet; retrying"),
            },
            _ = stop.cancelled() => return None,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(5)),
            _ = stop.cancelled() => return None,
        }
    }
}

fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// [`ATTEMPTS_BEFORE_HEADER`], 0 when absent or unreadable.
fn attempts_before(headers: Option<&HeaderMap>) -> i64 {
    headers
        .and_then(|h| h.get(ATTEMPTS_BEFORE_HEADER))
        .and_then(|v| v.as_str().trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0)
}

fn parse(message: &jetstream::Message, attempt: i64, delivery: i64) -> Result<Job, String> {
    // `job-id`; the message id is the same for fresh jobs but differs for DLQ replays.
    let id = header(message, "job-id")
        .or_else(|| header(message, "Nats-Msg-Id"))
        .and_then(|v| v.parse::<Uuid>().ok())
        .ok_or("the message has no job id (job-id header)")?;
    let kind = header(message, "job-kind").ok_or("the message has no job-kind header")?;
    let payload = serde_json::from_slice(&message.payload)
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    Ok(Job {
        id,
        kind,
        payload,
        attempt,
        delivery,
        request_id: header(message, "x-request-id"),
        traceparent: header(message, "traceparent"),
    })
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
