//! What every handler shares: built by `app`, read by `routes` and the use cases (so neither
//! imports the other both ways).

use std::sync::Arc;

use async_nats::jetstream::kv;
use authn::Verifier;
use axum::extract::FromRef;
use platform::pagination::CursorSigner;
use sqlx::PgPool;

use crate::domain::LinkBase;
use crate::keys::SigningKeys;
use crate::metrics::AuthMetrics;
use crate::passwords::Passwords;
use crate::settings::AuthSettings;

/// Shared by every handler: one allocation behind an `Arc`, so the copy axum hands each request
/// is one reference count, not a clone of every field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub db: PgPool,
    pub keys: Arc<SigningKeys>,
    pub passwords: Passwords,
    pub verifier: Arc<Verifier>,
    pub revocations: kv::Store,
    pub cursors: CursorSigner,
    pub metrics: AuthMetrics,
    pub settings: Arc<AuthSettings>,
    /// Where the links of account e-mails point (`ACCOUNT_LINK_BASE_URL`).
    pub links: LinkBase,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
