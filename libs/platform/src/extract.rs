//! Extractors that reject bad input with a problem naming the field at fault.
//!
//! Use these instead of `axum::Json`, `axum::extract::Query` and `axum::extract::Path`:
//! malformed JSON is 400, a body of the wrong shape is 422 with the JSON path of the field,
//! a bad query or path parameter is 400 naming the parameter.

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// A JSON body. Also a response: `Json(dto)` answers `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// Written by sonic-rs: the same JSON as serde_json, but it escapes strings many bytes at a
/// time where serde_json looks at each byte; with serde_json a page of 20 items took a third of
/// the instructions of a list that misses the cache (callgrind, `bench/items.sh`).
impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match sonic_rs::to_vec(&self.0) {
            Ok(body) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(e) => {
                ApiError::Internal(anyhow::anyhow!("serialising a response: {e}")).into_response()
            }
        }
    }
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body exceeds the limit".into())
    } else {
        ApiError::BadRequest {
            detail: "the request body could not be read".into(),
            errors: Vec::new(),
        }
    }
}

/// Parse a JSON document into `T`: syntax errors are 400, shape errors 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        // Trailing garbage after the document is a syntax error too.
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(e) => Err(ApiError::BadRequest {
                detail: format!("malformed JSON: {}", without_position(&e.to_string())),
                errors: Vec::new(),
            }),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(ApiError::BadRequest {
                    detail: format!("malformed JSON: {}", without_position(&inner.to_string())),
                    errors: Vec::new(),
                }),
                Category::Data => {
                    let message = without_position(&inner.to_string());
                    // A missing field has the parent's path; the message names the field.
                    let field = match (path.as_str(), missing_field_name(&message)) {
                        (".", Some(name)) => name,
                        (".", None) => "body".to_owned(),
                        (parent, Some(name)) => format!("{parent}.{name}"),
                        (_, None) => path,
                    };
                    Err(ApiError::Validation(vec![FieldError::new(field, message)]))
                }
            }
        }
    }
}

/// serde_json appends " at line 1 column 9"; the field name says more to a client.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        parse_query(query).map(Query)
    }
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // A missing parameter has an empty path; the message names it.
        let field = if path == "." {
            missing_field_name(&message).unwrap_or_else(|| "query".to_owned())
        } else {
            path
        };
        ApiError::bad_param(field, message)
    })
}

fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// Path parameters; a malformed one (an id that is not a UUID) is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => "path".to_owned(),
                };
                Err(ApiError::bad_param(field, e.body_text()))
            }
            Err(other) => Err(ApiError::internal(anyhow::anyhow!(
                "path extraction: {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        item_id: u32,
        quantity: u16,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        lines: Vec<Line>,
    }

    fn field_of(err: ApiError) -> (u16, Vec<String>) {
        let p = err.problem();
        (p.status, p.errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn malformed_json_is_a_400() {
        let err = parse_json::<Order>(b"{\"lines\": [").unwrap_err();
        assert_eq!(err.problem().status, 400);
    }

    #[test]
    fn trailing_garbage_is_a_400() {
        let err = parse_json::<Order>(b"{\"lines\": []} xyz").unwrap_err();
        assert_eq!(err.problem().status, 400);
    }

    #[test]
    fn a_wrong_type_deep_inside_names_its_path() {
        let err =
            parse_json::<Order>(br#"{"lines":[{"item_id":1,"quantity":"many"}]}"#).unwrap_err();
        assert_eq!(field_of(err), (422, vec!["lines[0].quantity".to_owned()]));
    }

    #[test]
    fn a_missing_field_is_a_422_naming_it() {
        let err = parse_json::<Order>(b"{}").unwrap_err();
        assert_eq!(field_of(err), (422, vec!["lines".to_owned()]));
        let err = parse_json::<Order>(br#"{"lines":[{"item_id":1}]}"#).unwrap_err();
        assert_eq!(field_of(err), (422, vec!["lines[0].quantity".to_owned()]));
    }

    #[test]
    fn a_bad_query_parameter_is_a_400_naming_it() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Page {
            limit: Option<u8>,
        }
        let err = parse_query::<Page>("limit=lots").unwrap_err();
        assert_eq!(field_of(err), (400, vec!["limit".to_owned()]));
        assert!(parse_query::<Page>("limit=5").is_ok());
    }
}
