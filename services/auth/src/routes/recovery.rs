//! Verifying the address, forgotten passwords, changing one's password (docs/auth.md).

use authn::CurrentUser;
use axum::extract::State;
use axum::http::StatusCode;
use platform::extract::Json;
use platform::http::{RequestId, TraceParent};
use platform::problem::Problem;
use platform::ratelimit::ClientIp;
use platform::{ApiError, FieldError};
use serde::Deserialize;

use crate::domain::{AccountToken, Email, Password};
use crate::state::AppState;
use crate::store::outbox::Cause;
use crate::verification::invalid_token;
use crate::{recovery, verification};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// The `token` query parameter of the e-mail's link.
    pub token: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    #[schema(example = "ann@example.com")]
    pub email: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The `token` query parameter of the reset e-mail's link.
    pub token: String,
    /// The new password, 12–128 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// The new password, 12–128 characters.
    pub password: String,
}

fn presented(raw: &str) -> Result<AccountToken, ApiError> {
    AccountToken::parse(raw).ok_or_else(invalid_token)
}

fn new_password(raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw).map_err(|m| ApiError::Validation(vec![FieldError::new("password", m)]))
}

/// `POST /v1/auth/email/verify` `{token}` → 204: the address is verified; access tokens say so
/// from the next login or refresh on.
#[utoipa::path(post, path = "/v1/auth/email/verify", operation_id = "verifyEmail", tag = "auth", request_body = TokenBody,
    responses((status = 204, description = "Address verified"),
        (status = 400, description = "Malformed JSON, or a token that is invalid, expired or already used", body = Problem),
        (status = 422, description = "Invalid field", body = Problem), (status = 429, description = "Rate limited", body = Problem)))]
pub async fn verify_email(
    State(state): State<AppState>,
    Json(body): Json<TokenBody>,
) -> Result<StatusCode, ApiError> {
    verification::verify(&state, &presented(&body.token)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/email/verify/resend` (bearer) → 202: a new verification e-mail is on its way.
#[utoipa::path(post, path = "/v1/auth/email/verify/resend", operation_id = "resendVerification", tag = "auth", security(("bearer" = [])),
    responses((status = 202, description = "Verification e-mail queued"), (status = 401, body = Problem),
        (status = 409, description = "Already verified", body = Problem), (status = 429, description = "Rate limited", body = Problem)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: CurrentUser,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
) -> Result<StatusCode, ApiError> {
    let cause = Cause {
        request_id: Some(&request_id),
        traceparent: traceparent.as_deref(),
    };
    verification::resend(&state, user.id, cause).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /v1/auth/password/forgot` `{email}` → 202 for any well-formed address, in the same time:
/// the answer never tells whether an account exists. A known address gets an e-mail with a
/// reset link (valid 30 minutes, single use); at most 5 per address and hour.
#[utoipa::path(post, path = "/v1/auth/password/forgot", operation_id = "forgotPassword", tag = "auth", request_body = ForgotPassword,
    responses((status = 202, description = "If the address has an account, a reset e-mail is on its way"),
        (status = 400, description = "Malformed JSON", body = Problem), (status = 422, description = "Invalid field", body = Problem),
        (status = 429, description = "Rate limited", body = Problem)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    TraceParent(traceparent): TraceParent,
    Json(body): Json<ForgotPassword>,
) -> Result<StatusCode, ApiError> {
    let email = Email::parse(&body.email).map_err(|m| ApiError::invalid_field("email", m))?;
    let cause = Cause {
        request_id: Some(&request_id),
        traceparent: traceparent.as_deref(),
    };
    recovery::forgot(&state, &email, cause).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /v1/auth/password/reset` `{token, password}` → 204: the password is replaced and every
/// session of the account ends. An invalid, expired or used token is 400 and changes nothing.
#[utoipa::path(post, path = "/v1/auth/password/reset", operation_id = "resetPassword", tag = "auth", request_body = ResetPassword,
    responses((status = 204, description = "Password replaced, every session revoked"),
        (status = 400, description = "Malformed JSON, or a token that is invalid, expired or already used", body = Problem),
        (status = 422, description = "Invalid field (password too short or long)", body = Problem),
        (status = 429, description = "Rate limited", body = Problem),
        (status = 503, description = "Revocation could not be broadcast; nothing changed, retry", body = Problem)))]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    let password = new_password(&body.password)?;
    let token = presented(&body.token)?;
    recovery::reset(&state, &token, password, client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/password` `{current_password, password}` (bearer) → 204: the password is
/// replaced and every other session of the account ends; this one stays. A wrong current
/// password is 403 and counts as a failed login from this address (429 while it is blocked).
#[utoipa::path(post, path = "/v1/auth/password", operation_id = "changePassword", tag = "auth", request_body = ChangePassword, security(("bearer" = [])),
    responses((status = 204, description = "Password changed, the other sessions revoked"), (status = 401, body = Problem),
        (status = 403, description = "Wrong current password", body = Problem),
        (status = 409, description = "The password changed meanwhile", body = Problem),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 422, description = "Invalid field", body = Problem), (status = 429, description = "Rate limited or throttled", body = Problem),
        (status = 503, description = "Revocation could not be broadcast; nothing changed, retry", body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    ClientIp(client): ClientIp,
    Json(body): Json<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let password = new_password(&body.password)?;
    super::check_presented("current_password", &body.current_password)?;
    recovery::change(&state, &user, &body.current_password, password, client).await?;
    Ok(StatusCode::NO_CONTENT)
}
