//! Wiring: settings → NATS, job consumers, scheduler, health → a runnable [`App`]. Its HTTP port
//! serves health only.

use std::sync::Arc;

use axum::Router;
use jobs::Topology;
use jobs::images::ImageStore;
use jobs::maintenance::{AUTH_FAMILY, CATALOG_FAMILY};
use jobs::runtime::{JobMetrics, spawn_family, spawn_max_delivery_watch};
use jobs::schedule::{LocalLeader, spawn_scheduler};
use platform::lease::LeaseLock;
use platform::{App, AppBuilder};

use crate::email::{Emails, Transport, smtp_transport};
use crate::leader::KubeLeader;
use crate::settings::Settings;
use crate::thumbnails::Thumbnails;
use crate::{SERVICE, VERSION};

/// The JetStream topology as the worker provisions it: the families it serves (`image`, `email`)
/// and those its scheduler publishes to (`catalog`, `auth`), so their consumers exist before the
/// first scheduled job. `worker dlq replay` may send a job of any of them back.
pub fn topology(base: Topology) -> Topology {
    base.with_families([
        jobs::images::FAMILY,
        jobs::email::FAMILY,
        CATALOG_FAMILY,
        AUTH_FAMILY,
    ])
}

/// Build the worker; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let nats = builder.nats(&settings.nats).await?;
    let js = async_nats::jetstream::new(nats);
    let topology = topology(Topology::from_settings(&settings.nats)?);
    topology.add_readiness_check(&mut builder);
    let metrics = JobMetrics::register(builder.metrics())?;
    spawn_max_delivery_watch(
        js.clone(),
        topology.clone(),
        metrics.clone(),
        builder.shutdown(),
    );
    jobs::dlq::spawn_depth_gauge(
        js.clone(),
        topology.clone(),
        builder.metrics(),
        builder.shutdown(),
    )?;
    let transport = match (settings.email_transport.as_str(), &settings.smtp_url) {
        ("smtp", Some(url)) => Transport::Smtp(smtp_transport(url).map_err(anyhow::Error::msg)?),
        _ => Transport::Log,
    };
    spawn_family(
        js.clone(),
        topology.clone(),
        jobs::email::FAMILY,
        Arc::new(Emails {
            from: settings.email_from.parse()?,
            transport,
        }),
        8,
        metrics.clone(),
        builder.shutdown(),
    );
    spawn_family(
        js.clone(),
        topology.clone(),
        jobs::images::FAMILY,
        Arc::new(Thumbnails {
            js: js.clone(),
            topology: topology.clone(),
            store: ImageStore::new(js.clone(), &topology),
            sizes: Arc::new(settings.sizes()),
        }),
        settings.image_concurrency,
        metrics,
        builder.shutdown(),
    );
    if settings.scheduler_enabled {
        let identity =
            std::env::var("HOSTNAME").unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
        match LeaseLock::in_cluster(
            &settings.scheduler_lease_name,
            &identity,
            std::time::Duration::from_secs(15),
        )
        .await
        {
            Some(lock) => spawn_scheduler(
                js,
                topology,
                settings.schedule(),
                Arc::new(KubeLeader {
                    lock: Arc::new(lock),
                }),
                builder.shutdown(),
            ),
            None => spawn_scheduler(
                js,
                topology,
                settings.schedule(),
                Arc::new(LocalLeader),
                builder.shutdown(),
            ),
        }
    }
    builder.build(Router::new()).await
}
