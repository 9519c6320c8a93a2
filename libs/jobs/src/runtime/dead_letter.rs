//! Dead letters: the one place a job is copied to `{ns}.dlq.<kind>`, whether a delivery failed
//! for good ([`delivery`], from the handling of a job) or the job ran out of deliveries without
//! ever being answered ([`spawn_max_delivery_watch`]). `worker dlq` ([`crate::dlq`]) reads and
//! replays what lands there.

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use platform::shutdown::Shutdown;
use serde::Deserialize;
use uuid::Uuid;

use super::{JOB_STATUS_EVENT, JobEvent, JobMetrics, attempts_before, publish_event};
use crate::headers;
use crate::topology::Topology;

/// Copy a job (its headers and payload) to `{ns}.dlq.<kind>` with how often (`job-attempts`) and
/// why (`job-error`) it failed, and wait for JetStream's ack. Returns the job's id, which the
/// copy keeps in `job-id`.
async fn copy(
    js: &jetstream::Context,
    topology: &Topology,
    mut headers: HeaderMap,
    payload: &[u8],
    kind: &str,
    attempts: i64,
    error: &str,
) -> anyhow::Result<String> {
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    let job_id = get(headers::JOB_ID)
        .or_else(|| get(headers::MSG_ID))
        .unwrap_or_default();
    // The DLQ copy gets its own id: the original's is still inside the jobs stream's window.
    let message_id = format!("dlq-{}", get(headers::MSG_ID).unwrap_or_default());
    headers.insert(headers::JOB_ID, job_id.as_str());
    headers.insert(headers::JOB_ATTEMPTS, attempts.to_string().as_str());
    headers.insert(
        headers::JOB_ERROR,
        error.replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert(headers::MSG_ID, message_id.as_str());
    js.publish_with_headers(topology.dlq_subject(kind), headers, payload.to_vec().into())
        .await?
        .await?;
    Ok(job_id)
}

/// A delivery that failed for good (a permanent error, the last attempt, an unreadable message):
/// copy it to the DLQ, then stop its deliveries. If the copy fails the message is left
/// unacknowledged, to be redelivered rather than lost.
pub(super) async fn delivery(
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &JobMetrics,
    message: &jetstream::Message,
    kind: &str,
    attempt: i64,
    error: &str,
) {
    let headers = message.headers.clone().unwrap_or_default();
    match copy(
        js,
        topology,
        headers,
        &message.payload,
        kind,
        attempt,
        error,
    )
    .await
    {
        Ok(job_id) => {
            metrics.dead_lettered.inc();
            let _ = message.ack_with(AckKind::Term).await;
            tracing::error!(kind, job_id, attempt, error, "job dead-lettered");
        }
        Err(e) => tracing::error!(error = format!("{e:#}"), "dead-lettering failed"),
    }
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
    let kind = message
        .headers
        .get(headers::JOB_KIND)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| "unknown".into());
    // A replayed run's attempts continue after the dead run's, as the runtime reports them.
    let attempts = attempts_before(Some(&message.headers)).saturating_add(advisory.deliveries);
    let error = format!(
        "no answer after {} deliveries (the worker crashed or hung each time)",
        advisory.deliveries
    );
    let job_id = copy(
        js,
        topology,
        message.headers.clone(),
        &message.payload,
        &kind,
        attempts,
        &error,
    )
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
