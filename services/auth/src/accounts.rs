//! Creating an account, and deleting one (docs/design.md §4 "Personal data"), by its owner or by
//! an admin.
//!
//! Registration commits the user with a verification token and the e-mail carrying its link
//! (`verification::send`), so every account gets its e-mail once, and none without an account.
//!
//! The user row is deleted, not scrubbed: auth keeps nothing about a deleted person (sessions,
//! refresh tokens and failed-login counters go with it). The owner's password is verified first,
//! outside any transaction; then in one transaction the user is locked (and found unchanged),
//! every session revoked, the row deleted and an `account.deleted` event written to the outbox,
//! on which catalog-order anonymises the customer. The revocation is broadcast to every verifier
//! *before* the commit: if the broadcast fails, nothing is committed (503, retry); if the commit
//! fails after it, the sessions are dead and the account is still there, which a retry mends.

use std::net::IpAddr;
use std::time::Duration;

use authn::Role;
use jobs::accounts::{ACCOUNT_DELETED_EVENT, AccountDeleted};
use platform::ApiError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Email, Password};
use crate::sessions::{broadcast, to_time};
use crate::state::AppState;
use crate::store;
use crate::store::users::UserRow;

/// Create a customer account and queue its verification e-mail. `Conflict` when the address has
/// an account.
pub async fn register(
    state: &AppState,
    email: &Email,
    password: Password,
    cause: store::outbox::Cause<'_>,
) -> Result<UserRow, ApiError> {
    let hash = state.passwords.hash(password).await?;
    let mut tx = state.db.begin().await?;
    let user = store::users::insert(&mut *tx, email.as_str(), &hash, Role::Customer.as_str())
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) {
                ApiError::Conflict("an account with this email already exists".into())
            } else {
                e.into()
            }
        })?;
    crate::verification::send(&mut tx, &state.links, user.id, &user.email, &cause).await?;
    tx.commit().await?;
    Ok(user)
}

/// Why an account was deleted, as recorded on its revoked sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// By its owner, who confirmed the password.
    ByOwner,
    /// By an admin.
    ByAdmin,
}

impl Deletion {
    fn reason(self) -> &'static str {
        match self {
            Deletion::ByOwner => "account deleted",
            Deletion::ByAdmin => "account deleted by an admin",
        }
    }
}

/// The owner's confirmation of a deletion: their password, and the address it came from, which
/// the login throttle counts a wrong password against.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation<'a> {
    pub password: &'a str,
    pub client: IpAddr,
}

/// 429 while `(email, client)` is blocked by the login throttle, as login answers.
pub fn throttled(until: OffsetDateTime) -> ApiError {
    let wait = (until - OffsetDateTime::now_utc()).whole_seconds().max(1);
    ApiError::TooManyRequests {
        retry_after: Duration::from_secs(wait.unsigned_abs()),
    }
}

/// Delete `user_id`. With the owner's confirmation, a wrong password is `Forbidden` with nothing
/// changed but a failed login recorded for (email, client), exactly as login does; while that
/// pair is blocked the answer is `TooManyRequests` whatever the password. `NotFound` when there
/// is no such user; `Conflict` when they are the last enabled admin (whoever asks), so that
/// someone is always left to manage users, or when the password changed meanwhile (retry).
pub async fn delete(
    state: &AppState,
    user_id: Uuid,
    how: Deletion,
    confirm: Option<Confirmation<'_>>,
    cause: store::outbox::Cause<'_>,
) -> Result<(), ApiError> {
    let before = store::users::by_id(&state.db, user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))?;
    // The password is checked against the row read without a lock, before any transaction:
    // hashing (tens of milliseconds) never holds a row lock or a pool connection.
    if let Some(confirm) = confirm {
        let candidate =
            store::users::login_candidate(&state.db, &before.email, confirm.client).await?;
        if let Some(until) = candidate.locked_until {
            return Err(throttled(until));
        }
        if !state
            .passwords
            .verify(confirm.password, Some(&before.password_hash))
            .await
        {
            // Outside the transaction, which this error rolls back.
            store::throttle::record_failure(
                &state.db,
                &before.email,
                confirm.client,
                state.settings.login_max_failures,
            )
            .await?;
            return Err(ApiError::Forbidden("the password does not match".into()));
        }
    }
    let mut tx = state.db.begin().await?;
    // An admin's deletion first locks every enabled admin (always in id order, before the user
    // row), so that two admins deleting themselves or each other serialise: the second sees the
    // first gone and is refused below rather than leaving nobody to manage users.
    let admins = if before.role == Role::Admin.as_str() {
        Some(store::users::lock_admins(&mut *tx).await?)
    } else {
        None
    };
    let user = store::users::lock(&mut *tx, user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))?;
    if confirm.is_some() && user.password_hash != before.password_hash {
        // Changed since it was verified: the confirmation no longer proves anything.
        return Err(ApiError::Conflict(
            "the password changed while the account was being deleted; retry".into(),
        ));
    }
    if user.role == Role::Admin.as_str() {
        // Promoted since it was read: the admins are not locked, so start again.
        let admins = admins.ok_or_else(|| {
            ApiError::Conflict("the account changed while it was being deleted; retry".into())
        })?;
        if !admins.iter().any(|id| *id != user_id) {
            return Err(ApiError::Conflict(
                "the last admin cannot be deleted: make another user admin first".into(),
            ));
        }
    }
    store::sessions::revoke_all(&mut *tx, user_id, how.reason()).await?;
    let window = to_time(state.settings.access_token_ttl);
    let revoked = store::sessions::recently_revoked(&mut *tx, user_id, window).await?;
    store::users::delete(&mut tx, user_id, &user.email).await?;
    let event_id = Uuid::now_v7();
    let event = AccountDeleted { event_id, user_id };
    let payload = serde_json::to_value(&event).map_err(ApiError::internal)?;
    store::outbox::enqueue(&mut *tx, event_id, ACCOUNT_DELETED_EVENT, &payload, &cause).await?;
    broadcast(state, user_id, &revoked, how.reason()).await?;
    tx.commit().await?;
    tracing::info!(%user_id, reason = how.reason(), "account deleted");
    Ok(())
}
