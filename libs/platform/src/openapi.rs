//! OpenAPI 3.1 for every service: the spec at `/openapi.json`, Swagger UI at `/docs` (its assets
//! are compiled in; nothing is fetched from a CDN) — and the same under `/<service>/`, the paths
//! the chart's Ingress routes to each service, so both are reachable through one host.
//!
//! A service derives `utoipa::OpenApi` listing its paths, adds [`BearerAuth`] as a modifier, and
//! merges [`docs`] into its router.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// `/openapi.json` and `/docs`, and `/<service>/openapi.json` and `/<service>/docs`.
///
/// The spec is serialised once, here: Swagger UI's own routes would keep a copy of its structs
/// per path (1.5 MB of a 5 MB idle heap) and serialise it again on every request.
pub fn docs(service: &str, spec: OpenApi) -> Router {
    let json = serde_json::to_vec(&spec)
        .map(Bytes::from)
        .map_err(|e| e.to_string());
    let serve = move || {
        let json = json.clone();
        async move {
            match json {
                Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
            }
        }
    };
    ["".to_owned(), format!("/{service}")]
        .into_iter()
        .fold(Router::new(), |router, prefix| {
            let spec_path = format!("{prefix}/openapi.json");
            router
                .route(&spec_path, get(serve.clone()))
                .merge(Router::from(
                    SwaggerUi::new(format!("{prefix}/docs")).config(Config::new([spec_path])),
                ))
        })
}

/// Declares the `bearer` security scheme (EdDSA JWT from auth) that protected paths name.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /v1/auth/login (EdDSA JWT)."))
                    .build(),
            ),
        );
    }
}
