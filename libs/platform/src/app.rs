//! The runnable shape every service shares: an API listener, a metrics listener, health checks,
//! background tasks and one shutdown. A service's `app.rs` fills an [`AppBuilder`] and returns the
//! [`App`]; `main` runs it, tests start it on port 0.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::config::{DatabaseSettings, NatsSettings, PlatformSettings};
use crate::health::Health;
use crate::http;
use crate::metrics::Metrics;
use crate::server::{self, ServerSettings};
use crate::shutdown::Shutdown;
use crate::{db, nats};

pub struct AppBuilder {
    service: &'static str,
    settings: PlatformSettings,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
    nats_gaps: Option<tokio::sync::watch::Receiver<u64>>,
    /// The pool's first connection, opening while the service starts (see [`Self::postgres`]).
    warming: Option<tokio::task::JoinHandle<()>>,
}

impl AppBuilder {
    pub fn new(
        service: &'static str,
        version: &'static str,
        settings: &PlatformSettings,
    ) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        Ok(AppBuilder {
            service,
            settings: settings.clone(),
            metrics: Metrics::new(service, version).context("registering metrics")?,
            health: Health::new(shutdown.token()),
            shutdown,
            nats_gaps: None,
            warming: None,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Register a readiness check (see [`Health::add_check`]).
    pub fn add_check<F, Fut>(&mut self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.health.add_check(name, check);
    }

    /// The service's PostgreSQL pool, with its readiness check (reachable, schema current) and
    /// pool metrics registered. Applies migrations first when `AUTO_MIGRATE` is on (dev only).
    pub async fn postgres(
        &mut self,
        settings: &DatabaseSettings,
        migrator: &'static Migrator,
    ) -> anyhow::Result<PgPool> {
        let pool = db::pool(settings, self.service)?;
        // The first connection costs tens of milliseconds (its TLS handshake above all): open it
        // while the rest of the service starts; `build` waits for it (briefly), as the first
        // readiness probe would otherwise open a second one beside it.
        let warm = pool.clone();
        self.warming = Some(tokio::spawn(async move {
            let _ = warm.acquire().await;
        }));
        if settings.auto_migrate {
            db::migrate_up(&pool, migrator).await?;
            tracing::info!("AUTO_MIGRATE: migrations applied");
        }
        self.metrics
            .register(Box::new(db::PoolMetrics::new(pool.clone())?))?;
        let checked = pool.clone();
        self.add_check("postgres", move || {
            let pool = checked.clone();
            async move { db::check_ready(&pool, migrator).await }
        });
        Ok(pool)
    }

    /// The NATS client, with its readiness check registered (see [`nats::connect`]).
    pub async fn nats(&mut self, settings: &NatsSettings) -> anyhow::Result<async_nats::Client> {
        let (client, gaps) = nats::connect_watched(settings, self.service).await?;
        self.nats_gaps = Some(gaps);
        let checked = client.clone();
        self.add_check("nats", move || {
            let result = nats::check_ready(&checked);
            async move { result }
        });
        Ok(client)
    }

    /// Moves at every moment since which the client of [`Self::nats`] may have missed messages
    /// (see [`nats::connect_watched`]); `None` before `nats` was called.
    pub fn nats_gaps(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.nats_gaps.clone()
    }

    /// Bind both listeners and wrap `api` (with the health routes) in the shared HTTP stack.
    pub async fn build(mut self, api: Router) -> anyhow::Result<App> {
        if let Some(warming) = self.warming.take() {
            // Not long: with the database away the service starts unready, as before.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), warming).await;
        }
        let http_listener = TcpListener::bind(self.settings.http_addr)
            .await
            .with_context(|| format!("binding HTTP_ADDR {}", self.settings.http_addr))?;
        let metrics_listener = TcpListener::bind(self.settings.metrics_addr)
            .await
            .with_context(|| format!("binding METRICS_ADDR {}", self.settings.metrics_addr))?;
        let router = http::stack(
            api.merge(self.health.routes()),
            &self.settings,
            self.metrics.http.clone(),
        );
        Ok(App {
            service: self.service,
            http_addr: http_listener.local_addr()?,
            metrics_addr: metrics_listener.local_addr()?,
            http_listener,
            metrics_listener,
            router,
            metrics: self.metrics,
            server: ServerSettings::from(&self.settings),
            shutdown: self.shutdown,
        })
    }
}

pub struct App {
    service: &'static str,
    http_addr: SocketAddr,
    metrics_addr: SocketAddr,
    http_listener: TcpListener,
    metrics_listener: TcpListener,
    router: Router,
    metrics: Metrics,
    server: ServerSettings,
    shutdown: Shutdown,
}

impl App {
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// A handle to stop the app (tests use it; `run` also stops on SIGTERM/SIGINT).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serve until SIGTERM/SIGINT (or [`Shutdown::trigger`]), drain, and return.
    pub async fn run(self) -> anyhow::Result<()> {
        let App {
            service,
            http_addr,
            metrics_addr,
            http_listener,
            metrics_listener,
            router,
            metrics,
            server,
            shutdown,
        } = self;
        tracing::info!(
            http = %http_addr,
            metrics = %metrics_addr,
            "{service} listening"
        );
        let grace = server.grace_period;
        let stop = shutdown.token();

        let signals = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { shutdown.listen_for_signals().await })
        };
        let metrics_server = tokio::spawn(server::serve(
            metrics_listener,
            metrics.router(),
            server.clone(),
            // Metrics stay up until the API has drained, so the last scrape sees the drain.
            stop.child_token(),
        ));
        server::serve(http_listener, router, server, stop).await;

        if !shutdown.wait_for_tasks(grace).await {
            tracing::warn!("background tasks still running after the grace period");
        }
        signals.abort();
        metrics_server.abort();
        tracing::info!("{service} stopped");
        crate::telemetry::flush();
        Ok(())
    }
}
