//! The HTTP API of auth (docs/design.md §4). Each module: request/response DTOs and thin handlers.

pub mod account;
pub mod jwks;
pub mod recovery;
pub mod users;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, patch, post};
use platform::openapi::BearerAuth;
use platform::ratelimit::{self, ClientIpLimit};

use crate::state::AppState;

/// A password presented to be checked (login, deletion, change): refused above
/// `PASSWORD_MAX_LEN` characters before anything hashes it.
fn check_presented(field: &str, password: &str) -> Result<(), platform::ApiError> {
    if password.chars().count() > crate::domain::PASSWORD_MAX_LEN {
        return Err(platform::ApiError::invalid_field(
            field,
            "must be at most 128 characters",
        ));
    }
    Ok(())
}

/// The OpenAPI document of auth.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Storefront auth", description = "Accounts, tokens and sessions. Errors are RFC 9457 problem+json."),
    paths(account::register, account::login, account::refresh, account::logout, account::logout_all,
          account::me, account::delete_me, recovery::verify_email, recovery::resend_verification,
          recovery::forgot_password, recovery::reset_password, recovery::change_password, users::list, users::update, users::delete, jwks::jwks),
    components(schemas(platform::problem::Problem, platform::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Sign up, sign in, tokens"), (name = "admin", description = "User management"))
)]
pub struct ApiDoc;

/// [`ApiDoc`] as committed in `openapi/auth.json` and served; a test keeps the two equal.
pub const OPENAPI: &[u8] = include_bytes!("../../../../openapi/auth.json");

/// `auth_limit`: login, register, refresh, the account e-mails' routes and every password check
/// (deletion, change, reset) share one budget per client IP, held in the database so that every
/// replica draws from it.
pub fn router(state: AppState, auth_limit: ClientIpLimit) -> Router {
    let limited = Router::new()
        .route("/v1/auth/register", post(account::register))
        .route("/v1/auth/login", post(account::login))
        .route("/v1/auth/refresh", post(account::refresh))
        // A password check: the same per-address budget as login.
        .route("/v1/auth/me", delete(account::delete_me))
        .route("/v1/auth/password", post(recovery::change_password))
        // Each sends an e-mail or spends a token: a client gets no more of them than logins.
        .route("/v1/auth/password/forgot", post(recovery::forgot_password))
        .route("/v1/auth/password/reset", post(recovery::reset_password))
        .route("/v1/auth/email/verify", post(recovery::verify_email))
        .route(
            "/v1/auth/email/verify/resend",
            post(recovery::resend_verification),
        )
        .route_layer(middleware::from_fn_with_state(
            auth_limit,
            ratelimit::limit_by_client_ip,
        ));
    Router::new()
        .merge(limited)
        .route("/v1/auth/logout", post(account::logout))
        .route("/v1/auth/logout-all", post(account::logout_all))
        .route("/v1/auth/me", get(account::me))
        .route("/v1/auth/users", get(users::list))
        .route(
            "/v1/auth/users/{id}",
            patch(users::update).delete(users::delete),
        )
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .with_state(state)
        .merge(platform::openapi::docs(crate::SERVICE, OPENAPI))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_openapi_spec_is_what_the_code_describes() {
        testkit::openapi::committed_spec_is(
            crate::SERVICE,
            &<ApiDoc as utoipa::OpenApi>::openapi(),
        );
    }

    #[test]
    fn the_account_recovery_routes_are_documented_with_their_bodies() {
        let spec = serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap_or_default();
        for (path, body) in [
            ("/v1/auth/email/verify", Some("TokenBody")),
            ("/v1/auth/email/verify/resend", None),
            ("/v1/auth/password/forgot", Some("ForgotPassword")),
            ("/v1/auth/password/reset", Some("ResetPassword")),
            ("/v1/auth/password", Some("ChangePassword")),
        ] {
            let op = &spec["paths"][path]["post"];
            assert!(op.is_object(), "{path} is not documented");
            if let Some(body) = body {
                assert!(spec["components"]["schemas"][body].is_object(), "{body}");
            }
        }
        assert!(spec["components"]["schemas"]["Me"]["properties"]["email_verified"].is_object());
    }
}
