//! Wiring: settings → NATS, job consumers, health → a runnable [`App`]. Its HTTP port serves
//! health only.

use std::sync::Arc;

use axum::Router;
use jobs::Topology;
use jobs::runtime::{JobMetrics, spawn_family, spawn_max_delivery_watch};
use platform::nats::Namespace;
use platform::{App, AppBuilder};

use crate::email::OrderConfirmationEmail;
use crate::settings::Settings;
use crate::{SERVICE, VERSION};

/// Build the worker; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let nats = builder.nats(&settings.nats).await?;
    let js = async_nats::jetstream::new(nats);
    let topology = Topology::new(Namespace::new(&settings.nats.nats_namespace)?);
    let metrics = JobMetrics::register(builder.metrics())?;
    let email = topology
        .family("email")
        .ok_or_else(|| anyhow::anyhow!("no email job family"))?;
    spawn_max_delivery_watch(
        js.clone(),
        topology.clone(),
        metrics.clone(),
        builder.shutdown(),
    );
    spawn_family(
        js,
        topology,
        email,
        Arc::new(OrderConfirmationEmail {
            from: settings.email_from.clone(),
        }),
        metrics,
        builder.shutdown(),
    );
    builder.build(Router::new()).await
}
