//! The pull loops: a job family's consumer, which hands each delivery to its handling with at
//! most `concurrency` in flight, and an events listener, which applies each event once. Both pull
//! from a durable consumer, re-subscribing with backoff, and stop at shutdown after what they hold.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use platform::shutdown::Shutdown;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::handling::Runtime;
use super::{FromEvent, Handler, JobMetrics, header};
use crate::headers;
use crate::topology::{Family, RECONNECT, Topology};

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

/// How long an event of a subject this version does not know waits before it is delivered again
/// (`Nak` with this delay): a newer producer's event waits for a newer consumer instead of being
/// dropped. The consumer's `max_deliver` ([`crate::topology::EVENTS_MAX_DELIVER`]) ends it.
pub const UNKNOWN_EVENT_DELAY: Duration = Duration::from_secs(300);

/// Apply the events of the durable consumer `consumer` of the events stream, read as `E`, with
/// `apply` until shutdown. `apply` must be idempotent per event (an inbox); an event is
/// acknowledged only after it returns `Ok`. An event `E` does not know is not acknowledged but
/// `Nak`ed with [`UNKNOWN_EVENT_DELAY`], so a newer consumer can still apply it. Run it beside
/// something that provisions the consumer (the service's outbox relay provisions its topology).
pub fn spawn_event_listener_on<E, F, Fut>(
    js: jetstream::Context,
    topology: Topology,
    consumer: String,
    apply: F,
    shutdown: &Shutdown,
) where
    E: FromEvent,
    F: Fn(E) -> Fut + Send + Sync + 'static,
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
                platform::telemetry::set_parent(&span, header(&message, headers::TRACEPARENT).as_deref());
                let name = topology.event_name(&message.subject).unwrap_or_default();
                match E::from_event(name, &message.payload) {
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
    let mut backoff = RECONNECT;
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
        if !backoff.wait(stop).await {
            return None;
        }
    }
}
