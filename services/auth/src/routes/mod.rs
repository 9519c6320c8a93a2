//! The HTTP API of auth (docs/design.md §4). Each module: request/response DTOs and thin handlers.

pub mod account;
pub mod jwks;
pub mod users;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, patch, post};
use platform::openapi::BearerAuth;
use platform::ratelimit::{self, ClientIpLimit};

use crate::state::AppState;

/// The OpenAPI document of auth.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Storefront auth", description = "Accounts, tokens and sessions. Errors are RFC 9457 problem+json."),
    paths(account::register, account::login, account::refresh, account::logout, account::logout_all,
          account::me, account::delete_me, users::list, users::update, users::delete, jwks::jwks),
    components(schemas(platform::problem::Problem, platform::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Sign up, sign in, tokens"), (name = "admin", description = "User management"))
)]
pub struct ApiDoc;

/// `auth_limit`: login, register, refresh and account deletion (a password check) share one
/// budget per client IP, held in the
/// database so that every replica draws from it.
pub fn router(state: AppState, auth_limit: ClientIpLimit) -> Router {
    let limited = Router::new()
        .route("/v1/auth/register", post(account::register))
        .route("/v1/auth/login", post(account::login))
        .route("/v1/auth/refresh", post(account::refresh))
        // A password check: the same per-address budget as login.
        .route("/v1/auth/me", delete(account::delete_me))
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
        .merge(platform::openapi::docs(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        ))
}
