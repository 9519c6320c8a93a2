//! The HTTP API of catalog-order (docs/design.md §4). Each module: request/response DTOs and
//! thin handlers that parse a request, call one function of `usecases` and map its result
//! (docs/design.md §2, "Layers"); `error` turns a use case's error into problem+json.

pub mod categories;
pub mod customers;
mod error;
pub mod idempotent;
pub mod images;
pub mod items;
pub mod jobs;
pub mod orders;
pub mod payments;

use authn::CurrentUser;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::Method;
use platform::cache::Cached;
use platform::openapi::BearerAuth;

use crate::state::AppState;

/// The OpenAPI document of catalog-order.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Storefront catalog and orders", description = "Categories, items, customers and orders. Errors are RFC 9457 problem+json."),
    paths(categories::list, categories::get, categories::create, categories::update, categories::delete,
          items::list, items::facets, items::get, items::create, items::update, items::delete,
          images::upload, images::list, images::serve,
          customers::get, customers::put, customers::export,
          orders::create, orders::list, orders::get, orders::cancel, orders::set_status,
          payments::open, payments::webhook, jobs::get),
    components(schemas(platform::problem::Problem, platform::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "catalog", description = "Categories and items"), (name = "customers", description = "The signed-in customer"),
         (name = "orders", description = "Placing, paying and following orders"),
         (name = "payments", description = "The payment provider's webhooks"),
         (name = "jobs", description = "Background jobs"))
)]
pub struct ApiDoc;

/// [`ApiDoc`] as committed in `openapi/catalog-order.json` and served; a test keeps the two equal.
pub const OPENAPI: &[u8] = include_bytes!("../../../../openapi/catalog-order.json");

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/categories",
            get(categories::list).post(categories::create),
        )
        .route(
            "/v1/categories/{id}",
            get(categories::get)
                .patch(categories::update)
                .delete(categories::delete),
        )
        .route("/v1/items", get(items::list).post(items::create))
        .route("/v1/items/facets", get(items::facets))
        .route(
            "/v1/items/{id}",
            get(items::get).patch(items::update).delete(items::delete),
        )
        .route(
            "/v1/items/{id}/images",
            get(images::list)
                .post(images::upload)
                .layer(DefaultBodyLimit::max(images::UPLOAD_BODY_LIMIT)),
        )
        .route(
            "/v1/items/{id}/images/{image_id}/{size}",
            get(images::serve),
        )
        .route("/v1/customers/me", get(customers::get).put(customers::put))
        .route("/v1/customers/me/export", get(customers::export))
        .route("/v1/orders", get(orders::list).post(orders::create))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/v1/orders/{id}/status", post(orders::set_status))
        .route("/v1/orders/{id}/payment", post(payments::open))
        .route("/v1/payments/webhook", post(payments::webhook))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_writes))
        .route_layer(middleware::from_fn_with_state(
            Cached {
                cache: state.cache.clone(),
                tags_of: crate::changes::tags_of_route,
                reads: Some(state.reads.clone()),
            },
            platform::cache::serve,
        ))
        .with_state(state)
        .merge(platform::openapi::docs(crate::SERVICE, OPENAPI))
}

/// Mutations are rate limited per signed-in user, in the database so that every replica shares
/// the budget; reads never reach the limiter (no extra round trip). Anonymous mutations pass
/// through here and are refused (401) by their handler; the verified user is kept for the
/// handler to reuse.
async fn limit_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    if let Ok(user) = CurrentUser::from_request_parts(&mut parts, &state).await
        && let Err(refused) = state.write_limiter.check(&user.id.to_string()).await
    {
        return refused.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
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
}
