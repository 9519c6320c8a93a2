//! `Idempotency-Key` on the HTTP side: reading the header and answering (or replaying) with the
//! stored body. The key's bookkeeping is `store::idempotency`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::ApiError;

use crate::store::idempotency::Claim;

/// `Idempotency-Key`: optional; 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_param("Idempotency-Key", "must be 1–255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

pub fn json_response(status: StatusCode, body: Vec<u8>, replayed: bool) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The stored answer of a request seen before.
pub fn replay(status: u16, body: Vec<u8>) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        body,
        true,
    )
}

/// Claim the request's `Idempotency-Key` (when it has one) inside `tx`, before any effect.
/// `Some(answer)`: the same request was answered before — commit `tx` and send `answer` again.
pub async fn claim(
    tx: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    key: Option<&str>,
    request_hash: &[u8],
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match crate::store::idempotency::claim(tx, user_id, key, request_hash).await? {
        Claim::New => Ok(None),
        Claim::Replay { status, body } => Ok(Some(replay(status, body))),
        Claim::Mismatch => Err(ApiError::invalid_field(
            "Idempotency-Key",
            "was already used with another request body",
        )),
    }
}
