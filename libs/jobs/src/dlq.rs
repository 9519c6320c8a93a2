//! The dead-letter stream as operators see it: list, replay, purge (`worker dlq …`).

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;

use crate::headers;
use crate::topology::Topology;

/// One dead job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// Sequence in the DLQ stream: what `replay` takes.
    pub sequence: u64,
    pub job_id: String,
    pub kind: String,
    pub attempts: String,
    pub error: String,
}

fn get(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

pub async fn list(js: &jetstream::Context, topology: &Topology) -> anyhow::Result<Vec<DeadJob>> {
    let mut stream = js
        .get_stream(topology.dlq_stream())
        .await
        .context("opening the DLQ stream")?;
    let state = stream.info().await?.state.clone();
    let mut dead = Vec::new();
    if state.messages == 0 {
        return Ok(dead);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        // Replayed messages leave gaps.
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        dead.push(DeadJob {
            sequence,
            job_id: get(&message.headers, headers::JOB_ID),
            kind: get(&message.headers, headers::JOB_KIND),
            attempts: get(&message.headers, headers::JOB_ATTEMPTS),
            error: get(&message.headers, headers::JOB_ERROR),
        });
    }
    Ok(dead)
}

/// Send a dead job back to the work queue (as the same job id, with fresh deliveries) and remove it
/// from the DLQ. The attempts the dead run spent go along ([`headers::JOB_ATTEMPTS_BEFORE`]): the new
/// run's attempts continue after them, so its status events are a later attempt's, which is what
/// lets catalog-order move the job on from `dead`.
pub async fn replay(
    js: &jetstream::Context,
    topology: &Topology,
    sequence: u64,
) -> anyhow::Result<DeadJob> {
    let stream = js.get_stream(topology.dlq_stream()).await?;
    let message = stream
        .get_raw_message(sequence)
        .await
        .with_context(|| format!("no dead job at sequence {sequence}"))?;
    let job_id = get(&message.headers, headers::JOB_ID);
    let kind = get(&message.headers, headers::JOB_KIND);
    anyhow::ensure!(!kind.is_empty(), "dead message {sequence} has no job-kind");
    let mut headers = HeaderMap::new();
    headers.insert(headers::JOB_ID, job_id.as_str());
    headers.insert(headers::JOB_KIND, kind.as_str());
    if let Ok(spent) = get(&message.headers, headers::JOB_ATTEMPTS)
        .trim()
        .parse::<i64>()
    {
        headers.insert(
            headers::JOB_ATTEMPTS_BEFORE,
            spent.max(0).to_string().as_str(),
        );
    }
    let request_id = get(&message.headers, headers::REQUEST_ID);
    if !request_id.is_empty() {
        headers.insert(headers::REQUEST_ID, request_id.as_str());
    }
    // A message id of its own: the original's may still be inside the duplicate window.
    headers.insert(
        headers::MSG_ID,
        format!("replay-{sequence}-{job_id}").as_str(),
    );
    js.publish_with_headers(
        topology.job_subject(&kind),
        headers,
        message.payload.clone(),
    )
    .await?
    .await
    .context("re-publishing the job")?;
    stream.delete_message(sequence).await?;
    Ok(DeadJob {
        sequence,
        attempts: get(&message.headers, headers::JOB_ATTEMPTS),
        error: get(&message.headers, headers::JOB_ERROR),
        job_id,
        kind,
    })
}

/// Drop every dead job; returns how many.
pub async fn purge(js: &jetstream::Context, topology: &Topology) -> anyhow::Result<u64> {
    let stream = js.get_stream(topology.dlq_stream()).await?;
    Ok(stream.purge().await?.purged)
}

/// Keep `jobs_dlq_messages` (dead jobs waiting in `{NS}_DLQ`) current: read from the stream every
/// 15 s, so an alert can say "the DLQ is not empty" however the jobs got there.
pub fn spawn_depth_gauge(
    js: jetstream::Context,
    topology: Topology,
    metrics: &platform::metrics::Metrics,
    shutdown: &platform::shutdown::Shutdown,
) -> Result<(), prometheus::Error> {
    let gauge = prometheus::IntGauge::new(
        "jobs_dlq_messages",
        "Dead jobs waiting in the dead-letter stream.",
    )?;
    metrics.register(Box::new(gauge.clone()))?;
    let stop = shutdown.token();
    shutdown.spawn("dlq-depth", async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return Ok(()),
            }
            if let Ok(mut stream) = js.get_stream(topology.dlq_stream()).await
                && let Ok(info) = stream.info().await
            {
                gauge.set(i64::try_from(info.state.messages).unwrap_or(i64::MAX));
            }
        }
    });
    Ok(())
}
