//! Rate limits shared by every replica, and the client IP they are keyed by.
//!
//! A limit is GCRA ("generic cell rate algorithm"): each key has a *theoretical arrival time*
//! (`tat`) stored in PostgreSQL; a request pushes it `period` (60 s / per-minute) forward and is
//! allowed while it stays within `burst × period` of now. One statement decides and records,
//! atomically, so every replica of a service draws from the same budget and a restart resets
//! nothing. The table lives in each service's database; its migration creates it as
//! [`TABLE_DDL`] says.
//!
//! `X-Forwarded-For` is believed only when the peer is a trusted proxy ([`TrustedProxies`]).
//! Clients are keyed by [`client_key`]: an IPv4 address as it is, an IPv6 address by its /64.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use ipnet::IpNet;
use prometheus::IntCounter;
use sqlx::PgPool;

use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::shutdown::Shutdown;

/// What a service's migration creates (copied there verbatim, so the library names no service).
///
/// UNLOGGED: a limit's state is not worth a WAL write per request; PostgreSQL empties the table
/// after a crash (not after a clean restart) and does not replicate it, which at worst hands
/// every client a fresh budget once. No index on `tat`: updates then stay HOT (the row is
/// rewritten in place), and the purge's scan of a table this small costs less than the index.
pub const TABLE_DDL: &str = "CREATE UNLOGGED TABLE rate_limits (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL
)";

/// `TRUSTED_PROXIES`: the networks whose `X-Forwarded-For` we believe.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Parse CIDRs (`10.0.0.0/8`) or single addresses; `Err` names the first bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not a CIDR or IP address"))?;
            nets.push(net);
        }
        Ok(TrustedProxies(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries further left
    /// were written by the client and could say anything.
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// A rate limit: `per_minute` sustained with bursts of `burst`, per key.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// What the shared store answered for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the key's budget allows the next request after this long.
    Refused {
        retry_after: Duration,
    },
}

/// One statement: insert the key or push its `tat` forward, but only while it stays within the
/// burst; when the update is refused, the same round trip reads the stored `tat` so the answer
/// can say when to retry. The outer `SELECT` sees the row as it was before the statement (the
/// refused case needs exactly that). Under concurrency that snapshot can be older than the row
/// version the update was refused against (PostgreSQL re-checks the newest version under its
/// lock): the read `tat` then says "fits now", or no row at all, and [`REREAD`] asks again.
const DECIDE: &str = "
WITH allowed AS (
    INSERT INTO rate_limits AS t (key, tat) VALUES ($1, now() + $2::float8 * interval '1 second')
    ON CONFLICT (key) DO UPDATE
        SET tat = greatest(t.tat, now()) + $2::float8 * interval '1 second'
        WHERE greatest(t.tat, now()) + $2::float8 * interval '1 second'
              <= now() + $3::float8 * interval '1 second'
    RETURNING 1
)
SELECT true AS allowed, 0::float8 AS ahead FROM allowed
UNION ALL
SELECT false, extract(epoch FROM tat - now())::float8 FROM rate_limits
WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM allowed)";

/// A refused request's `tat`, read by a statement of its own and so with a snapshot that holds
/// the version that refused it.
const REREAD: &str =
    "SELECT extract(epoch FROM tat - now())::float8 FROM rate_limits WHERE key = $1";

/// A rate limit shared by every replica that uses the same database. Cheap to clone.
#[derive(Clone)]
pub struct Limiter(Arc<LimiterInner>);

struct LimiterInner {
    db: PgPool,
    scope: &'static str,
    /// Seconds one request pushes the key's `tat` forward (60 / per-minute).
    period: f64,
    burst: u32,
    refused: IntCounter,
    unavailable: IntCounter,
    /// Unix seconds of the last "store unreachable" log line, so an outage logs every 10 s, not
    /// on every request.
    last_warned: AtomicI64,
}

impl Limiter {
    /// A limit named `scope` (the `scope` label of `rate_limited_total`; keys of different
    /// scopes never meet).
    pub fn new(
        db: PgPool,
        scope: &'static str,
        quota: Quota,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            quota.per_minute > 0 && quota.burst > 0,
            "rate limit {scope}: per-minute and burst must be positive"
        );
        Ok(Limiter(Arc::new(LimiterInner {
            db,
            scope,
            period: 60.0 / f64::from(quota.per_minute),
            burst: quota.burst,
            refused: metrics.rate_limited.with_label_values(&[scope]),
            unavailable: metrics.rate_limit_unavailable.with_label_values(&[scope]),
            last_warned: AtomicI64::new(0),
        })))
    }

    /// Spend one request of `key`'s budget, or learn when there will be one.
    pub async fn decide(&self, key: &str) -> Result<Decision, sqlx::Error> {
        let inner = &self.0;
        let tolerance = inner.period * f64::from(inner.burst);
        let key = format!("{}:{key}", inner.scope);
        let row: Option<(bool, f64)> = sqlx::query_as(DECIDE)
            .bind(&key)
            .bind(inner.period)
            .bind(tolerance)
            .fetch_optional(&inner.db)
            .await?;
        // The request fits once `tat + period` is within the burst of the clock.
        let wait = |ahead: f64| ahead + inner.period - tolerance;
        let ahead = match row {
            Some((true, _)) => return Ok(Decision::Allowed),
            Some((false, ahead)) if wait(ahead) > 0.0 => ahead,
            // A stale snapshot (see DECIDE): read the row that refused us.
            _ => {
                let reread: Option<f64> = sqlx::query_scalar(REREAD)
                    .bind(&key)
                    .fetch_optional(&inner.db)
                    .await?;
                // Purged meanwhile: its budget is full again, one period is an upper bound.
                reread.unwrap_or(tolerance)
            }
        };
        Ok(Decision::Refused {
            retry_after: whole_seconds(wait(ahead)),
        })
    }

    /// `Ok` when `key` may go on; a 429 with `Retry-After` otherwise. If the store cannot be
    /// reached the request goes on (fail open, see docs/decisions.md): it counts in
    /// `rate_limit_unavailable_total{scope}` and is logged at most every 10 s.
    pub async fn check(&self, key: &str) -> Result<(), ApiError> {
        match self.decide(key).await {
            Ok(Decision::Allowed) => Ok(()),
            Ok(Decision::Refused { retry_after }) => {
                self.0.refused.inc();
                Err(ApiError::TooManyRequests { retry_after })
            }
            Err(error) => {
                self.0.unavailable.inc();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let last = self.0.last_warned.load(Ordering::Relaxed);
                if now - last >= 10
                    && self
                        .0
                        .last_warned
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(scope = self.0.scope, error = %error,
                        "rate limit store unreachable: letting requests through");
                }
                Ok(())
            }
        }
    }
}

/// Whole seconds, rounded up, at least 1 (what `Retry-After` can say).
fn whole_seconds(secs: f64) -> Duration {
    Duration::from_secs(secs.ceil().max(1.0) as u64)
}

/// Delete keys whose `tat` has passed: their budget is full again, which is what a missing row
/// means too.
#[tracing::instrument(name = "db rate_limits.purge", skip_all, fields(otel.kind = "client", db.system.name = "postgresql"))]
pub async fn purge(db: &PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM rate_limits WHERE tat < now()")
        .execute(db)
        .await
        .map(|r| r.rows_affected())
}

/// Purge every minute until shutdown. Every replica runs it; the DELETE is idempotent and cheap.
pub fn spawn_purge(db: PgPool, shutdown: &Shutdown) {
    let stop = shutdown.token();
    shutdown.spawn("rate-limit-purge", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = purge(&db).await {
                        tracing::debug!(error = %e, "rate limit purge failed; next minute");
                    }
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    });
}

/// The network a client is counted by, for every per-client budget and block: an IPv4 address
/// itself (/32), an IPv6 address's /64. One IPv6 host usually holds a whole /64 (SLAAC, privacy
/// addresses; a customer is delegated one or more), so keying by the full address would let it
/// rotate through 2^64 addresses for a fresh budget each time. An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, a dual-stack socket) counts as its IPv4 address.
pub fn client_network(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(ipnet::Ipv4Net::from(v4)),
        IpAddr::V6(v6) => IpNet::V6(ipnet::Ipv6Net::new_assert(v6, 64).trunc()),
    }
}

/// [`client_network`] as a key and as PostgreSQL `inet` text: `198.51.100.7` (IPv4 as it is),
/// `2001:db8:1:2::/64`.
pub fn client_key(ip: IpAddr) -> String {
    match client_network(ip) {
        IpNet::V4(net) => net.addr().to_string(),
        net @ IpNet::V6(_) => net.to_string(),
    }
}

/// The client's address as the client-IP limit saw it (see [`TrustedProxies::client_ip`]); an
/// extractor for handlers behind [`limit_by_client_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "ClientIp used on a route without limit_by_client_ip"
            ))
        })
    }
}

/// State of [`limit_by_client_ip`]: the limit and who may tell us the client's address.
#[derive(Clone)]
pub struct ClientIpLimit {
    pub limiter: Limiter,
    pub proxies: TrustedProxies,
}

/// Middleware (`axum::middleware::from_fn_with_state`): one request of the client IP's budget,
/// or 429. Hands the address on as [`ClientIp`].
pub async fn limit_by_client_ip(
    State(limit): State<ClientIpLimit>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
    else {
        return ApiError::internal(anyhow::anyhow!(
            "rate limiter could not identify the client"
        ))
        .into_response();
    };
    let client = limit.proxies.client_ip(peer, req.headers());
    req.extensions_mut().insert(ClientIp(client));
    if let Err(refused) = limit.limiter.check(&client_key(client)).await {
        return refused.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn clients_are_keyed_by_ipv4_address_or_ipv6_slash_64() {
        assert_eq!(client_key(ip("198.51.100.7")), "198.51.100.7");
        assert_eq!(client_key(ip("::ffff:198.51.100.7")), "198.51.100.7");
        // Every address of one /64 is one client; the next /64 is another.
        let one = client_key(ip("2001:db8:1:2::1"));
        assert_eq!(one, "2001:db8:1:2::/64");
        assert_eq!(client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), one);
        assert_eq!(client_key(ip("2001:db8:1:2:a1b2:c3d4:e5f6:789")), one);
        assert_ne!(client_key(ip("2001:db8:1:3::1")), one);
        assert_eq!(client_key(ip("::1")), "::/64");
        assert_eq!(
            client_network(ip("2001:db8:1:2::1")),
            "2001:db8:1:2::/64".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let h = headers(&["1.2.3.4"]);
        assert_eq!(proxies.client_ip(ip("203.0.113.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap();
        // The client wrote a fake first entry; the proxies appended what they saw.
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(proxies.client_ip(ip("192.168.1.1"), &h), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &http::HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last good hop.
        let h = headers(&["not-an-ip, 10.9.9.9"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn bad_cidrs_are_reported() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
        assert!(TrustedProxies::parse(&["::1".into(), "fd00::/8".into()]).is_ok());
    }
}
