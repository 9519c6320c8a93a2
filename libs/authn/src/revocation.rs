//! Revoked sessions, shared through the NATS KV bucket `{ns}_revocations`.
//!
//! Auth writes one key per revoked session id; the bucket's `max_age` equals the access-token
//! lifetime, after which every token of that session has expired anyway. Every verifier runs a
//! watcher that applies each write to its in-memory [`RevocationList`] as it happens, so a
//! revoked access token is refused by every replica within a second.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use platform::backoff::Backoff;
use platform::nats::Namespace;
use platform::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const BUCKET: &str = "revocations";

/// The session ids revoked within the last access-token lifetime.
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<RwLock<HashMap<Uuid, Instant>>>,
    ttl: Duration,
}

impl RevocationList {
    pub fn new(ttl: Duration) -> Self {
        RevocationList {
            inner: Arc::default(),
            ttl,
        }
    }

    pub fn contains(&self, sid: &Uuid) -> bool {
        self.inner
            .read()
            .map(|m| m.get(sid).is_some_and(|at| at.elapsed() < self.ttl))
            .unwrap_or(false)
    }

    pub fn insert(&self, sid: Uuid) {
        if let Ok(mut m) = self.inner.write() {
            m.insert(sid, Instant::now());
        }
    }

    /// Forget revocations older than the token lifetime: their tokens have expired.
    pub fn prune(&self) {
        if let Ok(mut m) = self.inner.write() {
            m.retain(|_, at| at.elapsed() < self.ttl);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is stored under a revoked session id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    pub user_id: Uuid,
    pub reason: String,
    pub revoked_at: i64,
}

/// Open the bucket with `replicas` copies (`NATS_REPLICAS`), creating it if this is the first
/// service to need it.
pub async fn bucket(
    js: &jetstream::Context,
    ns: &Namespace,
    token_ttl: Duration,
    replicas: usize,
) -> anyhow::Result<kv::Store> {
    let name = ns.bucket(BUCKET);
    if let Ok(store) = js.get_key_value(&name).await {
        platform::nats::update_stream_limits(js, &format!("KV_{name}"), replicas, -1).await?;
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.clone(),
        description: "Revoked session ids; an entry lives as long as an access token".into(),
        history: 1,
        max_age: token_ttl,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating KV bucket {name}"))
}

/// Record revoked sessions; watchers everywhere apply them within a second.
pub async fn publish(
    store: &kv::Store,
    user_id: Uuid,
    sids: &[Uuid],
    reason: &str,
) -> anyhow::Result<()> {
    let value = serde_json::to_vec(&Revocation {
        user_id,
        reason: reason.to_owned(),
        revoked_at: time_now(),
    })?;
    for sid in sids {
        store
            .put(sid.to_string(), value.clone().into())
            .await
            .with_context(|| format!("writing revocation of session {sid}"))?;
    }
    Ok(())
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How a broken watch is re-opened: 100 ms doubling to 5 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Keep `list` current from the bucket until shutdown: current entries first, then every new
/// one. A broken watch (NATS restarting) is re-opened with backoff.
pub fn spawn_watcher(store: kv::Store, list: RevocationList, shutdown: &Shutdown) {
    let stop = shutdown.token();
    shutdown.spawn("revocation-watch", async move {
        let mut backoff = RECONNECT;
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            let mut watch = tokio::select! {
                watch = store.watch_with_history(">") => match watch {
                    Ok(watch) => watch,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch revocations; retrying");
                        if !backoff.wait(&stop).await {
                            return Ok(());
                        }
                        continue;
                    }
                },
                _ = stop.cancelled() => return Ok(()),
            };
            loop {
                tokio::select! {
                    entry = watch.next() => match entry {
                        Some(Ok(entry)) => {
                            backoff.reset();
                            if entry.operation == kv::Operation::Put
                                && let Ok(sid) = entry.key.parse::<Uuid>()
                            {
                                list.insert(sid);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "revocation watch failed; re-opening");
                            break;
                        }
                        None => break,
                    },
                    _ = prune.tick() => list.prune(),
                    _ = stop.cancelled() => return Ok(()),
                }
            }
            if !backoff.wait(&stop).await {
                return Ok(());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_forgotten_after_the_token_lifetime() {
        let list = RevocationList::new(Duration::from_millis(50));
        let sid = Uuid::new_v4();
        list.insert(sid);
        assert!(list.contains(&sid));
        assert!(!list.contains(&Uuid::new_v4()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!list.contains(&sid));
        list.prune();
        assert!(list.is_empty());
    }
}
