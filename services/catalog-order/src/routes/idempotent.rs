//! `Idempotency-Key` on the HTTP side: reading the header and sending (or replaying) the answer
//! that `usecases::idempotency` stored with the key.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::ApiError;

use crate::usecases::idempotency::Answer;

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

/// A use case's answer: the stored JSON body, marked `Idempotent-Replayed` when it is a replay.
pub fn answer(answer: Answer) -> Response {
    json_response(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        answer.body,
        answer.replayed,
    )
}
