//! The HTTP server: hyper with the production knobs axum's `serve` does not expose
//! (header-read timeout, keep-alive, a connection cap) and a graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::PlatformSettings;

/// Connection-level settings, taken from [`PlatformSettings`].
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub header_read_timeout: Duration,
    pub keep_alive: bool,
    pub max_connections: usize,
    pub grace_period: Duration,
}

impl From<&PlatformSettings> for ServerSettings {
    fn from(s: &PlatformSettings) -> Self {
        ServerSettings {
            header_read_timeout: s.http_header_read_timeout,
            keep_alive: s.http_keep_alive,
            max_connections: s.http_max_connections,
            grace_period: s.shutdown_grace_period,
        }
    }
}

/// How long accepted connections get to deliver their first request once shutdown begins.
const SETTLE: Duration = Duration::from_millis(500);

/// Serve `router` on `listener` until `stop` is cancelled, then stop accepting, let in-flight
/// requests finish (up to the grace period) and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    stop: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(settings.keep_alive);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20));

    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(settings.max_connections));

    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog instead of being
        // served badly.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        serve_connection(&builder, &graceful, &router, stream, peer, Some(permit));
    }

    // Connections the kernel completed but we had not accepted yet would be reset when the
    // listener closes, failing requests their clients already sent: take and serve them too.
    // Plain `accept` calls until the queue is empty — Tokio's accept only looks when epoll last
    // said "readable", which misses connections queued since.
    match listener.into_std() {
        Ok(queue) => {
            let _ = queue.set_nonblocking(true);
            while let Ok((stream, peer)) = queue.accept() {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                if let Ok(stream) = stream {
                    serve_connection(&builder, &graceful, &router, stream, peer, None);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not drain the accept queue"),
    }

    // A connection accepted a moment ago may hold a request hyper has not read yet; telling it
    // to shut down now would close it unanswered. Give such requests a moment to arrive.
    tokio::time::sleep(SETTLE.min(settings.grace_period)).await;
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "draining open connections");
    }
    if tokio::time::timeout(settings.grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over with connections still open; closing them");
    }
}

fn serve_connection(
    builder: &Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    router: &Router,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let service = router
        .clone()
        .map_request(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
        .into_owned();
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
        }
        drop(permit);
    });
}
