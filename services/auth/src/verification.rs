//! Proving an account's address (docs/auth.md, "Verifying the address"): a single-use link is
//! e-mailed at registration and on request; following it marks the address verified, which the
//! `email_verified` claim of the next access token (login or refresh) carries.

use jobs::email::{AccountLink, VERIFY_ADDRESS_KIND};
use platform::ApiError;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{AccountToken, LinkBase, TokenPurpose};
use crate::state::AppState;
use crate::store;
use crate::store::outbox::Cause;

/// A verification token for `user_id` at `email`, and the job outbox row of the e-mail carrying
/// its link, in the caller's transaction: the e-mail exists if and only if the token does.
pub(crate) async fn send(
    tx: &mut PgConnection,
    links: &LinkBase,
    user_id: Uuid,
    email: &str,
    cause: &Cause<'_>,
) -> Result<(), ApiError> {
    let purpose = TokenPurpose::VerifyEmail;
    let token = AccountToken::generate();
    let expires_at = purpose.expires_at(OffsetDateTime::now_utc());
    store::account_tokens::insert(&mut *tx, token.hash(), user_id, purpose, email, expires_at)
        .await?;
    let payload = email_payload(links, purpose, email, &token)?;
    store::outbox::enqueue_job_if(
        &mut *tx,
        true,
        Uuid::now_v7(),
        VERIFY_ADDRESS_KIND,
        &payload,
        cause,
    )
    .await?;
    Ok(())
}

/// The payload of an account e-mail: the address, the link with the token, its lifetime.
pub(crate) fn email_payload(
    links: &LinkBase,
    purpose: TokenPurpose,
    email: &str,
    token: &AccountToken,
) -> Result<serde_json::Value, ApiError> {
    let mail = AccountLink {
        email: email.to_owned(),
        link: links.link(purpose, token),
        valid_for_minutes: u32::try_from(purpose.ttl().as_secs() / 60).unwrap_or(u32::MAX),
    };
    serde_json::to_value(&mail).map_err(ApiError::internal)
}

/// Send a new verification link to the caller's address (the older ones keep working until they
/// expire: any of them proves the same mailbox). `Conflict` when it is verified already.
pub async fn resend(state: &AppState, user_id: Uuid, cause: Cause<'_>) -> Result<(), ApiError> {
    let user = store::users::by_id(&state.db, user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized("account no longer active".into()))?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::Conflict("the address is verified already".into()));
    }
    let mut tx = state.db.begin().await?;
    send(&mut tx, &state.links, user.id, &user.email, &cause).await?;
    tx.commit().await?;
    Ok(())
}

/// Spend a verification token and mark its address verified. An unknown, used, expired or
/// reset token is `BadRequest`, and changes nothing.
pub async fn verify(state: &AppState, token: &AccountToken) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    let spent = store::account_tokens::spend(&mut *tx, token.hash(), TokenPurpose::VerifyEmail)
        .await?
        .ok_or_else(invalid_token)?;
    store::users::mark_verified(&mut *tx, spent.user_id, &spent.email).await?;
    tx.commit().await?;
    tracing::info!(user_id = %spent.user_id, "address verified");
    Ok(())
}

/// One answer for every token that cannot be used, so that none tells more than another.
pub fn invalid_token() -> ApiError {
    ApiError::bad_param("token", "is invalid, expired or already used")
}
