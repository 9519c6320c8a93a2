//! The HTTP API of auth (DESIGN §4). Each module: request/response DTOs and thin handlers.

pub mod account;
pub mod jwks;
pub mod users;

use axum::Router;
use axum::routing::{get, patch, post};
use platform::openapi::BearerAuth;
use platform::ratelimit::{self, ClientIpKey, Quota, TrustedProxies};

use crate::app::AppState;

/// The OpenAPI document of auth.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Storefront auth", description = "Accounts, tokens and sessions. Errors are RFC 9457 problem+json."),
    paths(account::register, account::login, account::refresh, account::logout, account::logout_all,
          account::me, users::list, users::update, jwks::jwks),
    components(schemas(platform::problem::Problem, platform::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Sign up, sign in, tokens"), (name = "admin", description = "User management"))
)]
pub struct ApiDoc;

pub fn router(
    state: AppState,
    proxies: TrustedProxies,
    rate_limited: &prometheus::IntCounterVec,
    shutdown: &platform::shutdown::Shutdown,
) -> anyhow::Result<Router> {
    // Login, register and refresh share one budget per client IP.
    let quota = Quota {
        per_minute: state.settings.rate_limit_auth_per_minute,
        burst: state.settings.rate_limit_auth_burst,
    };
    let limited = Router::new()
        .route("/v1/auth/register", post(account::register))
        .route("/v1/auth/login", post(account::login))
        .route("/v1/auth/refresh", post(account::refresh))
        .layer(ratelimit::layer(
            "auth",
            quota,
            ClientIpKey(proxies),
            rate_limited,
            shutdown,
        )?);
    Ok(Router::new()
        .merge(limited)
        .route("/v1/auth/logout", post(account::logout))
        .route("/v1/auth/logout-all", post(account::logout_all))
        .route("/v1/auth/me", get(account::me))
        .route("/v1/auth/users", get(users::list))
        .route("/v1/auth/users/{id}", patch(users::update))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .with_state(state)
        .merge(platform::openapi::docs(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        )))
}
