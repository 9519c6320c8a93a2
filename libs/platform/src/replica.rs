//! Reads from a PostgreSQL streaming replica that answer exactly what the primary would.
//!
//! A service may name a read-only URL (`DATABASE_READ_URL`: a hot standby, CloudNativePG's `-ro`
//! Service). A monitor asks the primary for its WAL position and the replica for what it has
//! replayed, every [`PROBE_EVERY`]: the replica holds every write the primary had committed when
//! the newest sample it has replayed was taken, its *fresh-as-of* time. A read is sent to the
//! replica only when
//! - the replica is fresh as of a moment after the last change of what the read depends on (the
//!   response cache's tags: [`crate::cache::ResponseCache::changed_since`]), so a writer reading
//!   its own write, and everybody else once the change is announced, sees it, and a cache fill
//!   never keeps an answer older than the change that invalidated it; and
//! - it lags the primary by no more than `DATABASE_READ_MAX_LAG`.
//!
//! Everything else goes to the primary, and so does a read the replica failed (a 5xx: the
//! replica went away or cancelled the query), once more: a replica that falls behind or
//! disappears costs the primary load, never an answer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use prometheus::{Gauge, IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::{DatabaseSettings, Problems, Profile, Secret};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How often the monitor compares the replica with the primary: a change is readable from the
/// replica this long (plus the replica's own delay) after it was announced. Two one-row
/// statements per probe.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);

/// The settings of a read replica (README, settings table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaSettings {
    /// A read-only `postgres://` URL of a streaming replica of `DATABASE_URL`'s database; unset,
    /// every read goes to the primary. A secret (may come as `DATABASE_READ_URL_FILE`).
    pub database_read_url: Option<Secret>,
    /// The most the replica may lag the primary and still be read.
    #[serde(with = "crate::config::duration")]
    pub database_read_max_lag: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            database_read_url: None,
            database_read_max_lag: Duration::from_secs(1),
        }
    }
}

impl ReplicaSettings {
    pub fn validate(&self, profile: Profile, problems: &mut Problems) {
        if self.database_read_max_lag < PROBE_EVERY * 2 {
            problems.add(
                "DATABASE_READ_MAX_LAG",
                "must be at least 100ms (the replica is probed every 50ms)",
            );
        }
        let Some(url) = &self.database_read_url else {
            return;
        };
        if url
            .expose()
            .parse::<sqlx::postgres::PgConnectOptions>()
            .is_err()
        {
            problems.add("DATABASE_READ_URL", "is not a valid postgres:// URL");
            return;
        }
        let password = crate::config::password_of(url.expose());
        if profile == Profile::Prod && password.is_none_or(|p| p.is_empty()) {
            problems.add(
                "DATABASE_READ_URL",
                "has no password; prod needs an authenticated database user",
            );
        }
    }
}

/// Where a service's public reads go: the primary, and the replica when it may.
#[derive(Clone)]
pub struct Reads {
    primary: PgPool,
    replica: Option<Arc<Replica>>,
    metrics: ReadMetrics,
}

struct Replica {
    pool: PgPool,
    max_lag: Duration,
    origin: Instant,
    /// µs after `origin` as of which the replica holds every committed write; 0 = not usable.
    fresh_as_of: AtomicU64,
}

#[derive(Clone)]
struct ReadMetrics {
    reads: IntCounterVec,
    fallbacks: IntCounter,
}

/// The pool a handler reads with (see [`Reads::run`]): inserted into the request by the
/// middleware, the primary when it is missing.
#[derive(Clone)]
pub struct ReadPool(pub PgPool);

impl<S> FromRequestParts<S> for ReadPool
where
    Reads: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<ReadPool>() {
            Some(pool) => pool.clone(),
            None => ReadPool(Reads::from_ref(state).primary.clone()),
        })
    }
}

impl Reads {
    /// Reads on `primary`, and on the replica `settings` name, if any, with its monitor running
    /// until shutdown. The metrics are registered either way, so that dashboards show where reads
    /// went with or without a replica.
    pub fn new(
        primary: PgPool,
        settings: &ReplicaSettings,
        database: &DatabaseSettings,
        application_name: &str,
        metrics: &Metrics,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Reads> {
        let reads = IntCounterVec::new(
            Opts::new(
                "db_reads_total",
                "Public reads by the database they were sent to: primary or replica.",
            ),
            &["database"],
        )?;
        for database in ["primary", "replica"] {
            reads.with_label_values(&[database]);
        }
        let fallbacks = IntCounter::new(
            "db_replica_fallbacks_total",
            "Reads the replica failed (it went away, or cancelled the query) and the primary answered.",
        )?;
        let lag = Gauge::new(
            "db_replica_lag_seconds",
            "How far the read replica is behind the primary (time since the newest primary position \
             it has replayed was current), at the last probe; +Inf while it cannot be reached, NaN \
             without a replica.",
        )?;
        metrics.register(Box::new(reads.clone()))?;
        metrics.register(Box::new(fallbacks.clone()))?;
        metrics.register(Box::new(lag.clone()))?;
        let mut built = Reads {
            primary,
            replica: None,
            metrics: ReadMetrics { reads, fallbacks },
        };
        let Some(url) = &settings.database_read_url else {
            // Not a lag of 0: there is nothing to lag (a graph shows a gap, the alert stays quiet).
            lag.set(f64::NAN);
            return Ok(built);
        };
        let replica = Arc::new(Replica {
            pool: crate::db::pool_for(url, "DATABASE_READ_URL", database, application_name)?,
            max_lag: settings.database_read_max_lag,
            origin: Instant::now(),
            fresh_as_of: AtomicU64::new(0),
        });
        let (monitored, primary) = (replica.clone(), built.primary.clone());
        let stop = shutdown.token();
        shutdown.spawn("read replica monitor", async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = monitor(&monitored, &primary, &lag) => {}
            }
            Ok(())
        });
        built.replica = Some(replica);
        Ok(built)
    }

    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// The replica's pool for a read that must see every write committed before `since`, if the
    /// replica has replayed them and lags by no more than its bound.
    fn replica_for(&self, since: Instant) -> Option<&Replica> {
        let replica = self.replica.as_deref()?;
        let fresh = replica.fresh_as_of.load(Ordering::Acquire);
        let fresh_at = replica.origin + Duration::from_micros(fresh);
        let usable = fresh > 0 && fresh_at > since && fresh_at.elapsed() <= replica.max_lag;
        usable.then_some(replica)
    }

    /// Middleware body: run a GET's handler with its [`ReadPool`] on the replica when it holds
    /// every write before `since` (the last change of what the answer depends on), else on the
    /// primary; a 5xx from the replica is asked again of the primary.
    pub async fn run(&self, mut request: Request, since: Instant, next: Next) -> Response {
        let Some(replica) = self.replica_for(since) else {
            self.metrics.reads.with_label_values(&["primary"]).inc();
            request
                .extensions_mut()
                .insert(ReadPool(self.primary.clone()));
            return next.run(request).await;
        };
        self.metrics.reads.with_label_values(&["replica"]).inc();
        // A GET has no body: its head is all a second attempt needs.
        let (parts, body) = request.into_parts();
        let mut again = Request::from_parts(parts.clone(), Body::empty());
        let mut first = Request::from_parts(parts, body);
        first
            .extensions_mut()
            .insert(ReadPool(replica.pool.clone()));
        let response = next.clone().run(first).await;
        if !response.status().is_server_error() {
            return response;
        }
        // Not read from again until a probe finds it well.
        replica.fresh_as_of.store(0, Ordering::Release);
        self.metrics.fallbacks.inc();
        tracing::warn!(
            status = response.status().as_u16(),
            "read replica failed a read; asking the primary"
        );
        again
            .extensions_mut()
            .insert(ReadPool(self.primary.clone()));
        next.run(again).await
    }
}

impl Replica {
    fn micros_since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }
}

/// A WAL position (`16/B374D848`) as a number.
fn lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// Probe forever: sample the primary's WAL position, then ask the replica what it has replayed;
/// the replica is fresh as of the newest sample at or below that.
async fn monitor(replica: &Replica, primary: &PgPool, lag: &Gauge) {
    let mut samples: VecDeque<(u64, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let keep = u64::try_from((replica.max_lag * 2).as_micros()).unwrap_or(u64::MAX);
    loop {
        tick.tick().await;
        // Taken before asking: the position is at least what was committed by now.
        let taken = Instant::now();
        let at = replica.micros_since_origin(taken).max(1);
        let position = tokio::time::timeout(
            replica.max_lag,
            sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text").fetch_one(primary),
        )
        .await;
        if let Ok(Ok(position)) = position
            && let Some(position) = lsn(&position)
        {
            samples.push_back((at, position));
        }
        while samples.len() > 1 && samples.front().is_some_and(|&(t, _)| at - t > keep) {
            samples.pop_front();
        }
        let replayed = tokio::time::timeout(
            replica.max_lag,
            sqlx::query_as::<_, (bool, Option<String>)>(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text",
            )
            .fetch_one(&replica.pool),
        )
        .await;
        let fresh = match replayed {
            // Not a standby (a promoted replica, or the primary itself): it is current.
            Ok(Ok((false, _))) => Some(at),
            Ok(Ok((true, Some(replayed)))) => lsn(&replayed).and_then(|replayed| {
                samples
                    .iter()
                    .rev()
                    .find(|&&(_, position)| position <= replayed)
                    .map(|&(t, _)| t)
            }),
            Ok(Ok((true, None))) => None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "read replica probe failed");
                replica.fresh_as_of.store(0, Ordering::Release);
                lag.set(f64::INFINITY);
                continue;
            }
            Err(_) => {
                replica.fresh_as_of.store(0, Ordering::Release);
                lag.set(f64::INFINITY);
                continue;
            }
        };
        // Only forward: an older sample found now says nothing new.
        if let Some(fresh) = fresh {
            replica.fresh_as_of.fetch_max(fresh, Ordering::AcqRel);
        }
        match replica.fresh_as_of.load(Ordering::Acquire) {
            0 => lag.set(f64::INFINITY),
            fresh => lag.set(Duration::from_micros(at.saturating_sub(fresh)).as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_compare_as_numbers() {
        assert_eq!(lsn("0/0"), Some(0));
        assert_eq!(lsn("0/3000060"), Some(0x300_0060));
        assert!(lsn("1/0") > lsn("0/FFFFFFFF"));
        assert_eq!(lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(lsn("nonsense"), None);
        assert_eq!(lsn("0/xyz"), None);
    }
}
