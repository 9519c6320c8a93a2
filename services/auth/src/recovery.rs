//! Forgotten and changed passwords (docs/auth.md, "Forgotten and changed passwords").
//!
//! `forgot` answers the same, in the same time, for any address: it runs the same statements
//! whether or not an account exists (a per-address request count, a token insert that selects
//! the account, an outbox insert guarded by its result), so the only difference between the
//! paths is whether two of them write a row. `reset` spends a link's token and ends every
//! session; `change` needs the current password, counted like a login, and ends the others.

use std::net::IpAddr;

use authn::CurrentUser;
use jobs::email::PASSWORD_RESET_KIND;
use platform::ApiError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::throttled;
use crate::domain::{AccountToken, Email, Password, TokenPurpose};
use crate::sessions::{broadcast, to_time};
use crate::state::AppState;
use crate::store;
use crate::store::outbox::Cause;
use crate::verification::{email_payload, invalid_token};

/// Reset e-mails one address gets per hour at most, however many clients ask: enough for a
/// lost message or two, too few to flood someone's inbox through us.
pub const RESET_EMAILS_PER_HOUR: u32 = 5;

/// Start a reset: for an enabled account at `email` (and within its hourly allowance), a 30-minute
/// token and the e-mail with its link; for any other address, nothing but the count. The caller
/// answers 202 either way.
pub async fn forgot(state: &AppState, email: &Email, cause: Cause<'_>) -> Result<(), ApiError> {
    // Everything a known address needs is prepared for every address.
    let token = AccountToken::generate();
    let purpose = TokenPurpose::ResetPassword;
    let expires_at = purpose.expires_at(OffsetDateTime::now_utc());
    let payload = email_payload(&state.links, purpose, email.as_str(), &token)?;
    let mut tx = state.db.begin().await?;
    let allowed =
        store::account_tokens::count_reset_request(&mut *tx, email.as_str(), RESET_EMAILS_PER_HOUR)
            .await?;
    let user = store::account_tokens::insert_reset_for(
        &mut *tx,
        token.hash(),
        email.as_str(),
        allowed,
        expires_at,
    )
    .await?;
    store::outbox::enqueue_job_if(
        &mut *tx,
        user.is_some(),
        Uuid::now_v7(),
        PASSWORD_RESET_KIND,
        &payload,
        &cause,
    )
    .await?;
    tx.commit().await?;
    if let Some(user_id) = user {
        tracing::info!(%user_id, "password reset e-mail queued");
    }
    Ok(())
}

/// Set a new password with a reset link's token: every session of the user ends (on every
/// verifier), every other reset link dies, the address counts as verified (the link proved the
/// mailbox), and this client's login block for the address is lifted. An unusable token is
/// `BadRequest` and changes nothing.
pub async fn reset(
    state: &AppState,
    token: &AccountToken,
    password: Password,
    client: IpAddr,
) -> Result<(), ApiError> {
    let purpose = TokenPurpose::ResetPassword;
    // A look before hashing: a forged token costs a lookup, not an argon2 run.
    store::account_tokens::live(&state.db, token.hash(), purpose)
        .await?
        .ok_or_else(invalid_token)?;
    let password_hash = state.passwords.hash(password).await?;
    let mut tx = state.db.begin().await?;
    // Spent here, not above: of two concurrent resets with one token, one gets it.
    let spent = store::account_tokens::spend(&mut *tx, token.hash(), purpose)
        .await?
        .ok_or_else(invalid_token)?;
    let user_id = spent.user_id;
    store::users::set_password(&mut *tx, user_id, &password_hash).await?;
    store::account_tokens::spend_all(&mut *tx, user_id, purpose).await?;
    store::users::mark_verified(&mut *tx, user_id, &spent.email).await?;
    store::throttle::clear(&mut *tx, &spent.email, client).await?;
    store::sessions::revoke_all(&mut *tx, user_id, "password reset").await?;
    let window = to_time(state.settings.access_token_ttl);
    let revoked = store::sessions::recently_revoked(&mut *tx, user_id, window).await?;
    // Before the commit, as an account deletion does: if NATS cannot take it, nothing changes
    // and the same link can be used again.
    broadcast(state, user_id, &revoked, "password reset").await?;
    tx.commit().await?;
    tracing::info!(%user_id, "password reset");
    Ok(())
}

/// Change the caller's password, proving the current one as a login does (this address's block
/// for the email applies; a wrong one is `Forbidden` and counts as a failed login). Every other
/// session of the user ends; the caller's stays.
pub async fn change(
    state: &AppState,
    user: &CurrentUser,
    current: &str,
    password: Password,
    client: IpAddr,
) -> Result<(), ApiError> {
    let gone = || ApiError::Unauthorized("account no longer active".into());
    let before = store::users::by_id(&state.db, user.id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(gone)?;
    // Hashing happens on the row read without a lock, before the transaction (as deletion).
    let candidate = store::users::login_candidate(&state.db, &before.email, client).await?;
    if let Some(until) = candidate.locked_until {
        return Err(throttled(until));
    }
    if !state
        .passwords
        .verify(current, Some(&before.password_hash))
        .await
    {
        store::throttle::record_failure(
            &state.db,
            &before.email,
            client,
            state.settings.login_max_failures,
        )
        .await?;
        return Err(ApiError::Forbidden(
            "the current password does not match".into(),
        ));
    }
    let password_hash = state.passwords.hash(password).await?;
    let mut tx = state.db.begin().await?;
    let locked = store::users::lock(&mut *tx, user.id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(gone)?;
    if locked.password_hash != before.password_hash {
        return Err(ApiError::Conflict(
            "the password changed meanwhile; sign in again and retry".into(),
        ));
    }
    store::users::set_password(&mut *tx, user.id, &password_hash).await?;
    store::account_tokens::spend_all(&mut *tx, user.id, TokenPurpose::ResetPassword).await?;
    store::sessions::revoke_all_except(&mut *tx, user.id, user.session_id, "password changed")
        .await?;
    let window = to_time(state.settings.access_token_ttl);
    let revoked = store::sessions::recently_revoked(&mut *tx, user.id, window).await?;
    broadcast(state, user.id, &revoked, "password changed").await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password changed");
    Ok(())
}
