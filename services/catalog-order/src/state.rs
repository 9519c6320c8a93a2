//! What every handler shares: built by `app`, read by `routes` (so neither imports the other
//! both ways).

use std::sync::Arc;

use authn::Verifier;
use axum::extract::FromRef;
use jobs::images::ImageStore;
use platform::cache::ResponseCache;
use platform::pagination::CursorSigner;
use platform::ratelimit::Limiter;
use platform::replica::Reads;
use sqlx::PgPool;

use crate::store::items::Candidates;

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
    /// The primary: every write, and every read that is not a public catalog read.
    pub db: PgPool,
    /// Where public catalog reads go (a replica when it has every change they depend on); their
    /// handlers take the pool as [`platform::replica::ReadPool`].
    pub reads: Reads,
    pub verifier: Arc<Verifier>,
    pub cursors: CursorSigner,
    /// Writes per signed-in user, shared by every replica (keyed by the user id).
    pub write_limiter: Limiter,
    pub images: ImageStore,
    /// Rows a search reads in sort order before it asks the text index (`SEARCH_CANDIDATES`).
    pub search_candidates: Candidates,
    /// Public catalog reads kept in process; writes announce what they touched
    /// (`crate::changes`).
    pub cache: Arc<ResponseCache>,
    pub payments: crate::payments::Payments,
    /// `ORDERS_REQUIRE_VERIFIED_EMAIL`.
    pub orders_require_verified_email: bool,
}

impl FromRef<AppState> for Reads {
    fn from_ref(state: &AppState) -> Self {
        state.reads.clone()
    }
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
