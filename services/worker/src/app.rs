//! Wiring: settings → NATS, health → a runnable [`App`]. Its HTTP port serves health only.

use axum::Router;
use platform::{App, AppBuilder};

use crate::settings::Settings;
use crate::{SERVICE, VERSION};

/// Build the worker; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let _nats = builder.nats(&settings.nats).await?;
    builder.build(Router::new()).await
}
