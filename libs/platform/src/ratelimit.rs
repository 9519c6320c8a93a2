//! Rate limiting (tower_governor) keyed by client IP or by any key a service extracts, and the
//! client IP itself: `X-Forwarded-For` is believed only when the peer is a trusted proxy.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use http::Request;
use ipnet::IpNet;
use prometheus::IntCounterVec;
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::problem::ApiError;
use crate::shutdown::Shutdown;

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

/// Keys a rate limit by client IP (see [`TrustedProxies::client_ip`]).
#[derive(Debug, Clone)]
pub struct ClientIpKey(pub TrustedProxies);

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(self.0.client_ip(peer, req.headers()))
    }
}

/// A rate limit: `per_minute` sustained with bursts of `burst`, per key.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// A layer limiting requests per key. Refused requests answer 429 problem+json with
/// `Retry-After` and count in `rate_limited_total{scope}`. A background task owned by `shutdown`
/// forgets idle keys so the limiter's memory stays bounded.
pub fn layer<K>(
    scope: &'static str,
    quota: Quota,
    key: K,
    counter: &IntCounterVec,
    shutdown: &Shutdown,
) -> anyhow::Result<GovernorLayer<K, NoOpMiddleware<QuantaInstant>, Body>>
where
    K: KeyExtractor + Send + Sync + 'static,
    K::Key: Hash + Eq + Send + Sync + 'static,
{
    anyhow::ensure!(
        quota.per_minute > 0 && quota.burst > 0,
        "rate limit {scope}: per-minute and burst must be positive"
    );
    let period = Duration::from_secs(60) / quota.per_minute;
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(quota.burst)
        .key_extractor(key)
        .finish()
        .ok_or_else(|| anyhow::anyhow!("rate limit {scope}: invalid quota"))?;

    let limiter = config.limiter().clone();
    let stop = shutdown.token();
    shutdown.spawn("rate-limit-gc", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limiter.retain_recent(),
                _ = stop.cancelled() => return Ok(()),
            }
        }
    });

    let refused = counter.with_label_values(&[scope]);
    Ok(GovernorLayer::new(config).error_handler(move |error| refusal(error, &refused)))
}

/// A rate limit keyed by something only a handler knows (the verified user), checked with
/// [`KeyedLimiter::check`].
#[derive(Clone)]
pub struct KeyedLimiter<K: Hash + Eq + Clone + Send + Sync + 'static> {
    limiter: Arc<governor::DefaultKeyedRateLimiter<K>>,
    refused: prometheus::IntCounter,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimiter<K> {
    pub fn new(
        scope: &'static str,
        quota: Quota,
        counter: &IntCounterVec,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let burst = std::num::NonZeroU32::new(quota.burst)
            .ok_or_else(|| anyhow::anyhow!("rate limit {scope}: burst must be positive"))?;
        anyhow::ensure!(
            quota.per_minute > 0,
            "rate limit {scope}: rate must be positive"
        );
        let period = Duration::from_secs(60) / quota.per_minute;
        let quota = governor::Quota::with_period(period)
            .ok_or_else(|| anyhow::anyhow!("rate limit {scope}: invalid period"))?
            .allow_burst(burst);
        let limiter = Arc::new(governor::RateLimiter::keyed(quota));
        let gc = limiter.clone();
        let stop = shutdown.token();
        shutdown.spawn("rate-limit-gc", async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => gc.retain_recent(),
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        });
        Ok(KeyedLimiter {
            limiter,
            refused: counter.with_label_values(&[scope]),
        })
    }

    /// `Ok` when `key` may go on; a 429 with `Retry-After` otherwise.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        use governor::clock::{Clock, DefaultClock};
        self.limiter.check_key(key).map_err(|not_until| {
            self.refused.inc();
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::TooManyRequests {
                retry_after: wait.max(Duration::from_secs(1)),
            }
        })
    }
}

fn refusal(error: GovernorError, refused: &prometheus::IntCounter) -> Response {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            refused.inc();
            ApiError::TooManyRequests {
                retry_after: Duration::from_secs(wait_time.max(1)),
            }
            .into_response()
        }
        GovernorError::UnableToExtractKey => ApiError::internal(anyhow::anyhow!(
            "rate limiter could not identify the client"
        ))
        .into_response(),
        GovernorError::Other { code, msg, .. } => {
            let message = msg.unwrap_or_else(|| "request refused".to_owned());
            match code.as_u16() {
                401 => ApiError::Unauthorized(message).into_response(),
                _ => ApiError::BadRequest {
                    detail: message,
                    errors: Vec::new(),
                }
                .into_response(),
            }
        }
    }
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
