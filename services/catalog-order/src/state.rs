//! What every handler shares: built by `app`, read by `routes` (so neither imports the other
//! both ways).

use std::sync::Arc;

use authn::Verifier;
use axum::extract::FromRef;
use jobs::images::ImageStore;
use platform::pagination::CursorSigner;
use platform::ratelimit::Limiter;
use sqlx::PgPool;

use crate::store::items::Candidates;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub verifier: Arc<Verifier>,
    pub cursors: CursorSigner,
    /// Writes per signed-in user, shared by every replica (keyed by the user id).
    pub write_limiter: Limiter,
    pub images: ImageStore,
    /// Matches a search handles in full (`SEARCH_CANDIDATES`).
    pub search_candidates: Candidates,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
