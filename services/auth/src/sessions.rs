//! Sessions: starting one at login, rotating its refresh token, revoking it. Each revocation is
//! written to the database first (refresh stops working) and then to the NATS KV bucket (every
//! verifier refuses the session's access tokens within a second).

use std::time::Duration;

use authn::Claims;
use authn::revocation;
use platform::ApiError;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{RefreshToken, RefreshTokenHash};
use crate::state::AppState;
use crate::store;

/// What login and refresh answer (docs/design.md §4).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

pub(crate) fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn access_token(
    state: &AppState,
    user_id: Uuid,
    email: &str,
    email_verified: bool,
    role: authn::Role,
    session_id: Uuid,
) -> Result<String, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let ttl = i64::try_from(state.settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let claims = Claims {
        iss: state.settings.auth_issuer.clone(),
        aud: state.settings.auth_audience.clone(),
        sub: user_id,
        email: email.to_owned(),
        role,
        email_verified,
        sid: session_id,
        jti: Uuid::now_v7(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(ttl),
    };
    state.keys.sign(&claims).map_err(ApiError::Internal)
}

fn pair(state: &AppState, access_token: String, refresh: &RefreshToken) -> TokenPair {
    TokenPair {
        access_token,
        refresh_token: refresh.expose().to_owned(),
        token_type: "Bearer",
        expires_in: state.settings.access_token_ttl.as_secs(),
    }
}

/// A new session for a user who just proved who they are.
pub async fn start(
    state: &AppState,
    user_id: Uuid,
    email: &str,
    email_verified: bool,
    role: authn::Role,
) -> Result<TokenPair, ApiError> {
    let refresh = RefreshToken::generate();
    let expires_at = OffsetDateTime::now_utc() + to_time(state.settings.refresh_token_ttl);
    let session_id =
        store::sessions::create(&state.db, user_id, expires_at, refresh.hash()).await?;
    let access = access_token(state, user_id, email, email_verified, role, session_id)?;
    Ok(pair(state, access, &refresh))
}

/// Exchange a refresh token for a new pair. A token already used means it was stolen (or the
/// client is broken): the whole session is revoked.
pub async fn rotate(state: &AppState, presented: &RefreshToken) -> Result<TokenPair, ApiError> {
    let refused = || ApiError::Unauthorized("invalid or expired refresh token".into());
    let hash = presented.hash();
    let mut tx = state.db.begin().await?;
    let Some(token) = store::sessions::presented_for_update(&mut *tx, hash).await? else {
        return Err(refused());
    };
    if token.used_at.is_some() {
        let first = token.revoked_at.is_none();
        store::sessions::revoke(&mut *tx, token.session_id, "refresh token reuse").await?;
        tx.commit().await?;
        if first {
            state.metrics.refresh_reuse.inc();
            tracing::warn!(
                session_id = %token.session_id,
                user_id = %token.user_id,
                "refresh token reused; session revoked"
            );
        }
        broadcast(
            state,
            token.user_id,
            &[token.session_id],
            "refresh token reuse",
        )
        .await?;
        return Err(ApiError::Unauthorized(
            "refresh token already used; the session has been revoked".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    if token.revoked_at.is_some() || token.expires_at <= now || token.disabled {
        return Err(refused());
    }
    let role = token
        .role
        .parse()
        .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
    let next = RefreshToken::generate();
    let max_end = token.session_created_at + to_time(state.settings.session_max_age);
    let expires_at = (now + to_time(state.settings.refresh_token_ttl)).min(max_end);
    store::sessions::mark_used(&mut *tx, hash).await?;
    store::sessions::add_refresh_token(&mut *tx, token.session_id, next.hash()).await?;
    store::sessions::extend(&mut *tx, token.session_id, expires_at).await?;
    tx.commit().await?;
    // The account as it is now: a verification since the last refresh shows from here on.
    let access = access_token(
        state,
        token.user_id,
        &token.email,
        token.email_verified,
        role,
        token.session_id,
    )?;
    Ok(pair(state, access, &next))
}

/// Revoke the session a refresh token belongs to (logout). `false` when the token is unknown.
pub async fn end(state: &AppState, hash: RefreshTokenHash) -> Result<bool, ApiError> {
    let Some(session_id) = store::sessions::session_of(&state.db, hash).await? else {
        return Ok(false);
    };
    if let Some(user_id) = store::sessions::revoke(&state.db, session_id, "logout").await? {
        broadcast(state, user_id, &[session_id], "logout").await?;
    }
    Ok(true)
}

/// Revoke every session of a user (logout-all, disable, role change).
pub async fn end_all(state: &AppState, user_id: Uuid, reason: &str) -> Result<(), ApiError> {
    store::sessions::revoke_all(&state.db, user_id, reason).await?;
    // Broadcast every session revoked within a token lifetime, not only the ones just revoked:
    // if an earlier broadcast failed, calling this again repairs it.
    let window = to_time(state.settings.access_token_ttl);
    let recent = store::sessions::recently_revoked(&state.db, user_id, window).await?;
    broadcast(state, user_id, &recent, reason).await
}

pub(crate) async fn broadcast(
    state: &AppState,
    user_id: Uuid,
    sessions: &[Uuid],
    reason: &str,
) -> Result<(), ApiError> {
    for sid in sessions {
        state.verifier.revocations().insert(*sid);
    }
    revocation::publish(&state.revocations, user_id, sessions, reason)
        .await
        .map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "revocation broadcast failed");
            ApiError::Unavailable(
                "the sessions are revoked but other services could not be told yet; retry".into(),
            )
        })
}
