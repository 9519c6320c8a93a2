//! What every handler shares: built by `app`, read by `routes` and the use cases (so neither
//! imports the other both ways).

use std::sync::Arc;

use async_nats::jetstream::kv;
use authn::Verifier;
use axum::extract::FromRef;
use platform::pagination::CursorSigner;
use sqlx::PgPool;

use crate::keys::SigningKeys;
use crate::metrics::AuthMetrics;
use crate::passwords::Passwords;
use crate::settings::AuthSettings;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub keys: Arc<SigningKeys>,
    pub passwords: Passwords,
    pub verifier: Arc<Verifier>,
    pub revocations: kv::Store,
    pub cursors: CursorSigner,
    pub metrics: AuthMetrics,
    pub settings: Arc<AuthSettings>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
