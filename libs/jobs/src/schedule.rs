//! The scheduler (Celery beat's role): jobs at fixed intervals. The entries are the publishing
//! service's (the worker's settings; the kinds are contracts, `crate::maintenance`), the jobs are
//! run by the service that serves their family.
//!
//! Exactly once per slot, however many schedulers run: time is cut into slots of each entry's
//! interval, and a slot's job id is derived from the kind and the slot. The id is the
//! `Nats-Msg-Id` (JetStream drops a second publish inside its duplicate window) and the job id
//! the consumer's done marker remembers for a week (so a late second publish is acknowledged
//! without running). Only the leader publishes (see [`Leadership`]); the ids make a double leader
//! harmless rather than relying on the election.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;
use platform::shutdown::Shutdown;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::headers;
use crate::topology::{Topology, provision_with_retry};

/// One scheduled job kind and how often it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub every: Duration,
}

/// The slot of `at` for an interval, and that slot's job id: the same inputs give the same id on
/// every scheduler.
pub fn slot_job(entry: &Entry, at: SystemTime) -> (u64, Uuid) {
    let every = entry.every.as_secs().max(1);
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let slot = secs / every;
    let name = format!("storefront-schedule:{}:{every}:{slot}", entry.kind);
    (slot, Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()))
}

/// Who may publish. Outside Kubernetes the worker is the single local leader ([`LocalLeader`]);
/// in a cluster a Lease-based implementation goes here (the Kubernetes issue).
pub trait Leadership: Send + Sync + 'static {
    /// Resolves once this process leads, with a token that is cancelled if it stops leading.
    fn lead(&self, stop: &CancellationToken) -> impl Future<Output = CancellationToken> + Send;
}

/// Always the leader: one scheduler per deployment, or several made harmless by the slot ids.
pub struct LocalLeader;

impl Leadership for LocalLeader {
    async fn lead(&self, stop: &CancellationToken) -> CancellationToken {
        stop.child_token()
    }
}

/// Publish the job of `entry` for the slot of `at`. `Ok(false)` when JetStream already had it
/// (another scheduler, or this one before a restart).
pub async fn publish_slot(
    js: &jetstream::Context,
    topology: &Topology,
    entry: &Entry,
    at: SystemTime,
) -> anyhow::Result<bool> {
    let (slot, id) = slot_job(entry, at);
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, id.to_string().as_str());
    headers.insert(headers::JOB_ID, id.to_string().as_str());
    headers.insert(headers::JOB_KIND, entry.kind);
    let payload = serde_json::json!({ "slot": slot, "every_seconds": entry.every.as_secs() });
    let ack = js
        .publish_with_headers(
            topology.job_subject(entry.kind),
            headers,
            serde_json::to_vec(&payload)?.into(),
        )
        .await?
        .await
        .with_context(|| format!("publishing scheduled job {}", entry.kind))?;
    if !ack.duplicate {
        tracing::info!(kind = entry.kind, slot, job_id = %id, "scheduled job published");
    }
    Ok(!ack.duplicate)
}

/// Run the scheduler until shutdown: while leading, publish each entry's job once per slot.
pub fn spawn_scheduler<L: Leadership>(
    js: jetstream::Context,
    topology: Topology,
    entries: Vec<Entry>,
    leadership: Arc<L>,
    shutdown: &Shutdown,
) {
    let stop = shutdown.token();
    shutdown.spawn("scheduler", async move {
        if !provision_with_retry(&js, &topology, &stop).await {
            return Ok(());
        }
        // The last slot published per entry; a failed publish is retried on the next tick.
        let mut published: Vec<Option<u64>> = vec![None; entries.len()];
        while !stop.is_cancelled() {
            let leading = leadership.lead(&stop).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = leading.cancelled() => break,
                }
                let now = SystemTime::now();
                for (entry, last) in entries.iter().zip(published.iter_mut()) {
                    let (slot, _) = slot_job(entry, now);
                    if *last == Some(slot) {
                        continue;
                    }
                    match publish_slot(&js, &topology, entry, now).await {
                        Ok(_) => *last = Some(slot),
                        Err(e) => tracing::warn!(
                            kind = entry.kind,
                            error = format!("{e:#}"),
                            "publishing a scheduled job failed; retrying"
                        ),
                    }
                }
            }
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_one_id_and_the_next_slot_another() {
        let entry = Entry {
            kind: "catalog.expire_orders",
            every: Duration::from_secs(60),
        };
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (slot, id) = slot_job(&entry, start);
        assert_eq!(
            slot_job(&entry, start + Duration::from_secs(59)),
            (slot, id)
        );
        let (next, other) = slot_job(&entry, start + Duration::from_secs(60));
        assert_eq!(next, slot + 1);
        assert_ne!(other, id);
        let purge = Entry {
            kind: "auth.purge_sessions",
            ..entry
        };
        assert_ne!(slot_job(&purge, start).1, id, "kinds never share ids");
    }
}
