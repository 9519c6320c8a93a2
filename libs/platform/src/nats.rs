//! NATS: connecting (with retry and backoff), the server-version gate, readiness, and the
//! namespace that prefixes every subject, stream, bucket and object store (a setting's value,
//! defined in [`crate::config`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::Event;
use async_nats::connection::State;
use tokio::sync::watch;

use crate::config::NatsSettings;
// `Namespace` is the value of a setting, so it is defined with the settings (which check it at
// load, without importing this module); it is named here too.
pub use crate::config::{InvalidNamespace, Namespace};

/// Oldest server we support: async-nats's KV and object store cannot parse 2.9's replies.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// Parse `major.minor` from a server version such as `2.10.22` or `2.11.0-RC.1`.
pub fn parse_version(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `Err` explains why a server of this version is refused.
pub fn check_server_version(version: &str) -> Result<(), String> {
    match parse_version(version) {
        Some(v) if v >= MIN_SERVER_VERSION => Ok(()),
        Some(_) => Err(format!(
            "NATS server {version} is too old: Storefront needs >= {}.{} with JetStream (the KV \
             store and object store fail on older servers)",
            MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1
        )),
        None => Err(format!(
            "NATS server reports an unreadable version {version:?}"
        )),
    }
}

/// Connect, retrying with backoff (async-nats's default: immediate, then doubling to 4 s) for up to `NATS_CONNECT_TIMEOUT`. If the server is not reachable
/// by then, the client keeps retrying in the background and readiness reports it; if a server
/// answers and is too old, start-up is refused.
pub async fn connect(settings: &NatsSettings, name: &str) -> anyhow::Result<async_nats::Client> {
    Ok(connect_watched(settings, name).await?.0)
}

/// [`connect`], and a count of the moments since which this client may have missed core NATS
/// messages: every reconnection and every message dropped for a slow subscriber bumps it (the
/// first connection does not). A subscriber that keeps derived state (the response cache) starts
/// over when it moves.
pub async fn connect_watched(
    settings: &NatsSettings,
    name: &str,
) -> anyhow::Result<(async_nats::Client, watch::Receiver<u64>)> {
    let url = settings.nats_url.as_ref().context("NATS_URL is not set")?;
    let servers = server_addrs(url.expose())?;
    let (gaps, watched) = watch::channel(0u64);
    let gaps = Arc::new(gaps);
    let connected_before = Arc::new(AtomicBool::new(false));
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .event_callback(move |event| {
            let (gaps, connected_before) = (gaps.clone(), connected_before.clone());
            async move {
                let gap = match event {
                    Event::Connected => connected_before.swap(true, Ordering::AcqRel),
                    Event::SlowConsumer(_) => true,
                    _ => false,
                };
                if gap {
                    gaps.send_modify(|n| *n += 1);
                }
                match event {
                    Event::Connected => tracing::info!("NATS connected"),
                    Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
                    // The end of every client (a command finishing, a shutdown): nothing to warn of,
                    // and a command's stdout is its answer.
                    Event::Closed => tracing::debug!("NATS connection closed"),
                    other => tracing::warn!(event = %other, "NATS"),
                }
            }
        })
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(3))
        // The client's default backoff: immediate, then doubling up to 4 s.
        .connect(servers)
        .await
        .context("connecting to NATS")?;

    let deadline = Instant::now() + settings.nats_connect_timeout;
    while !handshake_done(&client) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if handshake_done(&client) {
        let version = client.server_info().version;
        check_server_version(&version).map_err(anyhow::Error::msg)?;
        tracing::info!(server_version = %version, "connected to NATS");
    } else {
        tracing::warn!(
            timeout = ?settings.nats_connect_timeout,
            "NATS not reachable yet; starting unready and retrying in the background"
        );
    }
    Ok((client, watched))
}

/// `NATS_URL`: one server or several, comma-separated (`nats://a:4222,nats://b:4222`, as the
/// `nats` CLI takes them), so a client reaches a cluster while any listed node is up. The
/// client also learns the other nodes of a cluster from the one it reaches.
pub fn server_addrs(urls: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .enumerate()
        // The URL may carry credentials: the error names its position, never its text.
        .map(|(i, url)| {
            url.parse()
                .map_err(|_| anyhow::anyhow!("NATS_URL: server {} is not a nats:// URL", i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .and_then(|addrs| {
            anyhow::ensure!(!addrs.is_empty(), "NATS_URL names no server");
            Ok(addrs)
        })
}

/// Bring an existing stream (`KV_<bucket>` of a KV bucket, `OBJ_<store>` of an object store) to
/// `replicas` copies and `max_bytes` (-1: no limit). Creating a bucket sets them; this is for one
/// made before the settings changed. JetStream moves the data itself.
pub async fn update_stream_limits(
    js: &async_nats::jetstream::Context,
    stream: &str,
    replicas: usize,
    max_bytes: i64,
) -> anyhow::Result<()> {
    let mut stream = js
        .get_stream(stream)
        .await
        .with_context(|| format!("opening stream {stream}"))?;
    let mut config = stream.info().await?.config.clone();
    if config.num_replicas == replicas && config.max_bytes == max_bytes {
        return Ok(());
    }
    let name = config.name.clone();
    tracing::info!(stream = %name, from = config.num_replicas, replicas, max_bytes,
        "changing a stream's replicas or size limit");
    config.num_replicas = replicas;
    config.max_bytes = max_bytes;
    js.update_stream(config)
        .await
        .with_context(|| format!("updating stream {name}"))?;
    Ok(())
}

/// Connected, and the server's INFO (with its version) has arrived: async-nats reports
/// `Connected` a moment before it publishes the INFO, and an empty version read in that window
/// once refused a healthy server at start-up.
fn handshake_done(client: &async_nats::Client) -> bool {
    client.connection_state() == State::Connected && !client.server_info().version.is_empty()
}

/// Readiness: connected, to a server new enough.
pub fn check_ready(client: &async_nats::Client) -> Result<(), String> {
    match client.connection_state() {
        State::Connected if !handshake_done(client) => Err("connecting".to_owned()),
        State::Connected => check_server_version(&client.server_info().version),
        State::Pending => Err("connecting".to_owned()),
        State::Disconnected => Err("disconnected".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_url_lists_servers_and_never_echoes_one() {
        let addrs = server_addrs("nats://a:4222, nats://user:pass@b:4223,").unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].port(), 4223);
        assert!(server_addrs(" , ").is_err());
        let err = server_addrs("nats://a:4222,http://user:secret@b").unwrap_err();
        assert!(err.to_string().contains("server 2"), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn servers_older_than_2_10_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("1.99.0").is_err());
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta.1").is_ok());
        assert!(check_server_version("garbage").is_err());
    }
}
