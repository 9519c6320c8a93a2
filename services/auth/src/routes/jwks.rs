use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};
use platform::extract::Json;

use crate::state::AppState;

/// `GET /.well-known/jwks.json`: every key that may have signed a live token.
#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "jwks", tag = "auth",
    responses((status = 200, content_type = "application/json",
        description = "A JSON Web Key Set (RFC 7517): `{keys: [{kty: OKP, crv: Ed25519, x, kid, alg: EdDSA, use: sig}]}`")))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        // Verifiers re-fetch on an unknown `kid`, so a short cache is safe during rotation.
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(state.keys.jwks().clone()),
    )
}
