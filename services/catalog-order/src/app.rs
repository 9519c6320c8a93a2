//! Wiring: settings → pool, NATS, router, background tasks → a runnable [`App`].

use axum::Router;
use platform::{App, AppBuilder};

use crate::settings::Settings;
use crate::{MIGRATOR, SERVICE, VERSION};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: sqlx::PgPool,
    pub nats: async_nats::Client,
}

/// Build the service; `App::run` serves it. Tests call this with `HTTP_ADDR` on port 0.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let mut builder = AppBuilder::new(SERVICE, VERSION, &settings.platform)?;
    let db = builder.postgres(&settings.database, &MIGRATOR).await?;
    let nats = builder.nats(&settings.nats).await?;
    let state = AppState { db, nats };
    builder.build(router(state)).await
}

/// The API routes (health and the shared stack are added by the builder).
fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
