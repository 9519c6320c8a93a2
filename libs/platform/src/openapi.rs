//! OpenAPI 3.1 for every service: the spec at `/openapi.json`, Swagger UI at `/docs` (its assets
//! are compiled in; nothing is fetched from a CDN) — and the same under `/<service>/`, the paths
//! the chart's Ingress routes to each service, so both are reachable through one host.
//!
//! A service derives `utoipa::OpenApi` listing its paths, adds [`BearerAuth`] as a modifier, and
//! merges [`docs`] into its router.

use axum::Router;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

/// `/openapi.json` and `/docs`, and `/<service>/openapi.json` and `/<service>/docs`.
pub fn docs(service: &str, spec: OpenApi) -> Router {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", spec.clone())).merge(Router::from(
        SwaggerUi::new(format!("/{service}/docs")).url(format!("/{service}/openapi.json"), spec),
    ))
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
