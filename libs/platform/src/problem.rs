//! RFC 9457 problem details: the one error shape every Storefront API answers with.
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` attaches a [`Problem`] to the response; the
//! HTTP envelope ([`crate::http`]) renders it, adding `instance` and `request_id`, which only the
//! envelope knows. Any other error response (a rejection we did not wrap, a timeout, a 404
//! fallback) is turned into a problem there too, so no error body ever has another shape.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field or parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem: the body of every error answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<slug>`: a stable identifier of the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub instance: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extra members specific to one problem type (e.g. the checks of a failed readiness probe).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: String::new(),
            request_id: String::new(),
            errors: Vec::new(),
            extra: None,
        }
    }

    /// The problem for an error response that carried none (an axum rejection, a fallback).
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let slug = match status {
            StatusCode::BAD_REQUEST => "bad-request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation-error",
            StatusCode::TOO_MANY_REQUESTS => "rate-limited",
            StatusCode::SERVICE_UNAVAILABLE => "service-unavailable",
            s if s.is_server_error() => "internal-error",
            _ => "http-error",
        };
        let title = status.canonical_reason().unwrap_or("Error");
        Problem::new(status, slug, title, detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Every error a handler can answer with. Client mistakes are 4xx; only `Internal` is a 500,
/// and its cause is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("rate limited")]
    TooManyRequests { retry_after: Duration },
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 507: the request is fine but storage for it has run out (a store at its size limit);
    /// retrying later may work once an operator made room.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 naming the parameter at fault.
    pub fn bad_param(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError::BadRequest {
            detail: format!("invalid parameter `{field}`: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// A 422 naming one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(cause.into())
    }

    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            ApiError::BadRequest { detail, errors } => {
                let mut p = Problem::new(S::BAD_REQUEST, "bad-request", "Bad request", detail);
                p.errors = errors.clone();
                p
            }
            ApiError::Validation(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                let mut p = Problem::new(
                    S::UNPROCESSABLE_ENTITY,
                    "validation-error",
                    "Validation failed",
                    format!("invalid value for: {}", fields.join(", ")),
                );
                p.errors = errors.clone();
                p
            }
            ApiError::Unauthorized(detail) => {
                Problem::new(S::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
            }
            ApiError::Forbidden(detail) => {
                Problem::new(S::FORBIDDEN, "forbidden", "Forbidden", detail)
            }
            ApiError::NotFound(detail) => {
                Problem::new(S::NOT_FOUND, "not-found", "Not found", detail)
            }
            ApiError::Conflict(detail) => Problem::new(S::CONFLICT, "conflict", "Conflict", detail),
            ApiError::PayloadTooLarge(detail) => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                detail,
            ),
            ApiError::UnsupportedMediaType(detail) => Problem::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail,
            ),
            ApiError::TooManyRequests { retry_after } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("retry after {} s", retry_after.as_secs().max(1)),
            ),
            ApiError::Unavailable(detail) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
                detail,
            ),
            ApiError::InsufficientStorage(detail) => Problem::new(
                S::INSUFFICIENT_STORAGE,
                "insufficient-storage",
                "Insufficient storage",
                detail,
            ),
            ApiError::Internal(_) => Problem::new(
                S::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal server error",
                "an unexpected error occurred; quote the request_id when reporting it",
            ),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::Unavailable("the database is busy or unreachable; try again".into())
            }
            // SQLSTATE class 08 (connection exception) and 57P (the server is shutting down or
            // restarting, e.g. 57P01 "terminating connection due to administrator command"): a
            // query in flight while PostgreSQL restarts. The database's fault, not ours: 503.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
            {
                ApiError::Unavailable("the database is restarting or unreachable; try again".into())
            }
            // 57014 "canceling statement due to statement timeout" (DB_STATEMENT_TIMEOUT): a
            // query that ran longer than the service allows, cancelled before it held the
            // database any longer.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                ApiError::Unavailable(
                    "the database did not answer in time (statement timeout); try again or ask for less"
                        .into(),
                )
            }
            // SQLSTATE class 22, "data exception" (a NUL byte in text, a number out of range):
            // a value the client sent that validation let through. Still the client's mistake,
            // so a 400 rather than a 500; the cause is logged to close the validation gap.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                tracing::warn!(error = %db, "database refused a value; validation missed it");
                ApiError::BadRequest {
                    detail: "a value in the request cannot be stored".into(),
                    errors: Vec::new(),
                }
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            // The envelope's span carries the request id into this line.
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut response = problem_response(self.problem());
        match &self {
            ApiError::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A response carrying `problem`; the envelope renders the body.
pub fn problem_response(problem: Problem) -> Response {
    let mut response = problem.status().into_response();
    response.extensions_mut().insert(problem);
    response
}
