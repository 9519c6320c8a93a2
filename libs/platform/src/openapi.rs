//! OpenAPI 3.1 for every service: the spec at `/openapi.json`, Swagger UI at `/docs` (its assets
//! are compiled in; nothing is fetched from a CDN) — and the same under `/<service>/`, the paths
//! the chart's Ingress routes to each service, so both are reachable through one host.
//!
//! A service derives `utoipa::OpenApi` listing its paths, adds [`BearerAuth`] as a modifier,
//! merges [`docs`] with its committed spec into its router, and keeps that file true with
//! `testkit::openapi::committed_spec_is` in a test.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// `/openapi.json` and `/docs`, and `/<service>/openapi.json` and `/<service>/docs`.
///
/// `spec` is the service's committed `openapi/<service>.json`, compiled in: the spec is an
/// artefact that each service's tests generate from the code and compare with that file. Making
/// it at start-up instead cost 2.3 MB of idle heap and some of the start-up time.
pub fn docs(service: &str, spec: &'static [u8]) -> Router {
    let serve = move || async move {
        (
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from_static(spec),
        )
    };
    ["".to_owned(), format!("/{service}")]
        .into_iter()
        .fold(Router::new(), |router, prefix| {
            let spec_path = format!("{prefix}/openapi.json");
            router.route(&spec_path, get(serve)).merge(Router::from(
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
