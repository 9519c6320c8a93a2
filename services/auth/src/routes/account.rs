//! Register, login, refresh, logout, logout-all, me, deleting one's account.

use std::time::Duration;

use authn::{CurrentUser, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use platform::extract::Json;
use platform::http::{RequestId, TraceParent};
use platform::problem::Problem;
use platform::ratelimit::ClientIp;
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::accounts::{self, Confirmation, Deletion};
use crate::domain::{Email, Password, RefreshToken};
use crate::sessions::{self, TokenPair};
use crate::state::AppState;
use crate::store;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(example = "ann@example.com")]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegisteredUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// Whether the owner proved the address (the verification link, or a password reset).
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /v1/auth/register` → 201 `{id, email, role}`; a verification e-mail goes out.
#[utoipa::path(post, path = "/v1/auth/register", operation_id = "register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = RegisteredUser), (status = 409, description = "Email taken", body = Problem),
        (status = 400, description = "Malformed JSON", body = Problem), (status = 422, description = "Invalid field", body = Problem), (status = 429, description = "Rate limited", body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let email = Email::parse(&body.email);
    let password = Password::parse(&body.password);
    let (email, password) = match (email, password) {
        (Ok(e), Ok(p)) => (e, p),
        (e, p) => {
            let mut errors = Vec::new();
            if let Err(m) = e {
                errors.push(FieldError::new("email", m));
            }
            if let Err(m) = p {
                errors.push(FieldError::new("password", m));
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let cause = store::outbox::Cause {
        request_id: Some(&request_id),
        traceparent: traceparent.as_deref(),
    };
    let user = accounts::register(&state, &email, password, cause).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredUser {
            id: user.id,
            email: user.email,
            role: Role::Customer,
        }),
    ))
}

/// `POST /v1/auth/login` → `{access_token, refresh_token, token_type, expires_in}`.
///
/// Unknown email and wrong password take the same time and give the same answer.
#[utoipa::path(post, path = "/v1/auth/login", operation_id = "login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = TokenPair), (status = 401, description = "Wrong email or password", body = Problem),
        (status = 403, description = "Account disabled", body = Problem), (status = 400, description = "Malformed JSON", body = Problem), (status = 422, description = "Invalid field", body = Problem),
        (status = 429, description = "Rate limited or throttled", body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<Credentials>,
) -> Result<Json<TokenPair>, ApiError> {
    super::check_presented("password", &body.password)?;
    // The throttle key is the normalised email even when it is not a valid address, so that
    // probing with variants of one address shares one counter. Stored emails are normalised and
    // valid, so an invalid one simply finds no account.
    let key = body.email.trim().to_lowercase();
    if key.len() > 254 {
        return Err(ApiError::invalid_field(
            "email",
            "must be at most 254 characters",
        ));
    }
    let candidate = store::users::login_candidate(&state.db, &key, client).await?;
    // This address is blocked for this email, whatever the password: a stranger who guessed it
    // would otherwise learn so from the answer.
    if let Some(until) = candidate.locked_until {
        state.metrics.login("throttled");
        return Err(accounts::throttled(until));
    }
    // Failures at this email from anywhere slow every attempt at it down, known or unknown
    // email alike, but never refuse one: the owner elsewhere still gets in.
    let delay = account_delay(
        candidate.account_failures,
        state.settings.login_max_failures,
        state.settings.login_account_max_delay,
    );
    if !delay.is_zero() {
        state.metrics.login_slowed();
        tokio::time::sleep(delay).await;
    }
    let verified = state
        .passwords
        .verify(&body.password, candidate.password_hash.as_deref())
        .await;
    let (Some(user_id), Some(role), Some(disabled), true) =
        (candidate.id, candidate.role, candidate.disabled, verified)
    else {
        store::throttle::record_failure(&state.db, &key, client, state.settings.login_max_failures)
            .await?;
        state.metrics.login("invalid_credentials");
        return Err(ApiError::Unauthorized("invalid email or password".into()));
    };
    if candidate.has_failures {
        store::throttle::clear(&state.db, &key, client).await?;
    }
    if disabled {
        state.metrics.login("disabled");
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    let role: Role = role
        .parse()
        .map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?;
    let pair = sessions::start(&state, user_id, &key, candidate.email_verified, role).await?;
    state.metrics.login("success");
    Ok(Json(pair))
}

/// The per-email slow-down: none below `max_failures` recent failures, then 250 ms doubling with
/// each further failure, never more than `cap`.
pub fn account_delay(failures: i32, max_failures: u32, cap: Duration) -> Duration {
    let Ok(failures) = u32::try_from(failures) else {
        return Duration::ZERO;
    };
    if failures < max_failures {
        return Duration::ZERO;
    }
    let doublings = (failures - max_failures).min(16);
    (Duration::from_millis(250) * 2u32.pow(doublings)).min(cap)
}

fn presented(raw: &str) -> Result<RefreshToken, ApiError> {
    RefreshToken::parse(raw)
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired refresh token".into()))
}

/// `POST /v1/auth/refresh` `{refresh_token}` → a new pair; the old token is spent.
#[utoipa::path(post, path = "/v1/auth/refresh", operation_id = "refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, description = "Invalid, spent or revoked", body = Problem),
        (status = 400, description = "Malformed JSON", body = Problem), (status = 422, description = "Invalid field", body = Problem), (status = 429, description = "Rate limited", body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let token = presented(&body.refresh_token)?;
    Ok(Json(sessions::rotate(&state, &token).await?))
}

/// `POST /v1/auth/logout` `{refresh_token}` → 204; the session and its access tokens are revoked.
#[utoipa::path(post, path = "/v1/auth/logout", operation_id = "logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Session revoked"), (status = 401, body = Problem), (status = 400, description = "Malformed JSON", body = Problem), (status = 422, description = "Invalid field", body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let token = presented(&body.refresh_token)?;
    if sessions::end(&state, token.hash()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Unauthorized(
            "invalid or expired refresh token".into(),
        ))
    }
}

/// `POST /v1/auth/logout-all` (bearer) → 204; every session of the user is revoked.
#[utoipa::path(post, path = "/v1/auth/logout-all", operation_id = "logoutAll", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Every session revoked"), (status = 401, body = Problem)))]
pub async fn logout_all(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<StatusCode, ApiError> {
    sessions::end_all(&state, user.id, "logout-all").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/me` (bearer).
#[utoipa::path(get, path = "/v1/auth/me", operation_id = "getMe", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Json<Me>, ApiError> {
    let row = store::users::by_id(&state.db, user.id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized("account no longer active".into()))?;
    let role = row
        .role
        .parse()
        .map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(Json(Me {
        id: row.id,
        email: row.email,
        role,
        email_verified: row.email_verified_at.is_some(),
        created_at: row.created_at,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// The account's current password, as confirmation.
    pub password: String,
}

/// `DELETE /v1/auth/me` `{password}` (bearer) → 204: the account is deleted, every session
/// revoked on every verifier, and `account.deleted` published, on which catalog-order anonymises
/// the customer. A wrong password is 403 and changes nothing but counts as a failed login for the
/// account's email from this address; while that address is blocked (as login would be) it is
/// 429 whatever the password. The last enabled admin is 409.
#[utoipa::path(delete, path = "/v1/auth/me", operation_id = "deleteMe", tag = "auth", request_body = DeleteAccount, security(("bearer" = [])),
    responses((status = 204, description = "Account deleted, sessions revoked"), (status = 401, body = Problem),
        (status = 403, description = "Wrong password", body = Problem), (status = 409, description = "The last admin", body = Problem),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 422, description = "Invalid field", body = Problem), (status = 429, description = "Rate limited or throttled", body = Problem),
        (status = 503, description = "Revocation could not be broadcast; nothing changed, retry", body = Problem)))]
pub async fn delete_me(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client): ClientIp,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    Json(body): Json<DeleteAccount>,
) -> Result<StatusCode, ApiError> {
    super::check_presented("password", &body.password)?;
    let cause = store::outbox::Cause {
        request_id: Some(&request_id),
        traceparent: traceparent.as_deref(),
    };
    accounts::delete(
        &state,
        user.id,
        Deletion::ByOwner,
        Some(Confirmation {
            password: &body.password,
            client,
        }),
        cause,
    )
    .await
    .map_err(|e| match e {
        // The token outlived its account (deleted meanwhile by an admin).
        ApiError::NotFound(_) => ApiError::Unauthorized("account no longer active".into()),
        e => e,
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_slow_down_starts_at_the_threshold_doubles_and_is_capped() {
        let cap = Duration::from_secs(2);
        assert_eq!(account_delay(0, 5, cap), Duration::ZERO);
        assert_eq!(account_delay(4, 5, cap), Duration::ZERO);
        assert_eq!(account_delay(5, 5, cap), Duration::from_millis(250));
        assert_eq!(account_delay(7, 5, cap), Duration::from_secs(1));
        assert_eq!(account_delay(8, 5, cap), cap);
        assert_eq!(account_delay(i32::MAX, 5, cap), cap);
        assert_eq!(account_delay(-1, 5, cap), Duration::ZERO);
    }
}
