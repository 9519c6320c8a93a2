//! The HTTP stack every service puts around its router: request id, access log, metrics,
//! timeout, body limit, CORS, panic catching, 404/405 fallbacks, security headers, and the
//! rendering of every error as problem+json.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::config::PlatformSettings;
use crate::metrics::HttpMetrics;
use crate::problem::{ApiError, PROBLEM_JSON, Problem, problem_response};

/// The request id header, on HTTP requests and NATS messages alike.
pub const REQUEST_ID: &str = "x-request-id";
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID);

/// The request id of the current request, for handlers that forward it (outgoing HTTP, NATS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(new_request_id())))
    }
}

/// The W3C `traceparent` to hand to the jobs a request causes, so their work joins its trace:
/// the request's own span when traces are on, else the caller's header when well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TraceParent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let current = crate::telemetry::traceparent_of(&tracing::Span::current());
        Ok(TraceParent(current.or_else(|| {
            parts
                .headers
                .get(crate::telemetry::TRACEPARENT)
                .and_then(|v| v.to_str().ok())
                .filter(|v| is_valid_traceparent(v))
                .map(str::to_owned)
        })))
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase, ids not all zero.
pub fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if hex(version, 2) && *version != "ff" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)
            && trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0'))
}

/// A client-supplied id is kept when it is short and plain, so it can be logged and forwarded
/// safely; anything else is replaced.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What the envelope needs to know.
#[derive(Clone)]
pub struct HttpContext {
    pub metrics: HttpMetrics,
    pub request_timeout: Duration,
}

/// Wrap a service's router (API routes plus health) in the shared stack.
pub fn stack(router: Router, settings: &PlatformSettings, metrics: HttpMetrics) -> Router {
    let context = Arc::new(HttpContext {
        metrics,
        request_timeout: settings.request_timeout,
    });
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(context, envelope));
    match cors(&settings.cors_allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse::<HeaderValue>().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                X_REQUEST_ID,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([X_REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no resource at {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    problem_response(Problem::for_status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed here", req.method()),
    ))
}

fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic hook installed by telemetry has already logged the message and location inside
    // the request's span; the client learns nothing but the request id.
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// Methods outside this list share one label so a client cannot grow the metric's cardinality.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

async fn envelope(State(ctx): State<Arc<HttpContext>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(X_REQUEST_ID, value);
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let method = method_label(req.method());
    // Unmatched paths share one label: the raw path would let clients create series at will.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let path = req.uri().path().to_owned();
    let is_probe = route.starts_with("/health/");

    let span = tracing::info_span!(
        "http_request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        request_id = %request_id,
        method = method,
        route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    // Join the caller's trace (W3C traceparent), if it sent one.
    crate::telemetry::set_parent(
        &span,
        req.headers()
            .get(crate::telemetry::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid_traceparent(v)),
    );

    let in_flight = ctx.metrics.in_flight.clone();
    in_flight.inc();
    let outcome = tokio::time::timeout(ctx.request_timeout, next.run(req))
        .instrument(span.clone())
        .await;
    in_flight.dec();

    let response = match outcome {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request did not complete within {} ms",
            ctx.request_timeout.as_millis()
        ))
        .into_response(),
    };
    let mut response = render_problem(response, &path, &request_id);
    secure_headers(response.headers_mut(), &request_id);

    let status = response.status();
    let elapsed = started.elapsed();
    ctx.metrics
        .observe(method, &route, status.as_u16(), elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.record("http.response.status_code", status.as_u16());
    let _entered = span.enter();
    if status.is_server_error() {
        // A failing probe is the readiness signal itself, not an error to track.
        if !is_probe {
            crate::telemetry::report_server_error(method, &route, status.as_u16(), &request_id);
        }
        tracing::error!(status = status.as_u16(), latency_ms, path = %path, "request completed");
    } else if is_probe {
        tracing::debug!(status = status.as_u16(), latency_ms, "request completed");
    } else {
        tracing::info!(status = status.as_u16(), latency_ms, path = %path, "request completed");
    }
    response
}

/// Give every error response the problem+json body; keep other responses as they are.
fn render_problem(response: Response, path: &str, request_id: &str) -> Response {
    let status = response.status();
    let (mut parts, body) = response.into_parts();
    let problem = match parts.extensions.remove::<Problem>() {
        Some(problem) => problem,
        None if status.is_client_error() || status.is_server_error() => {
            let is_problem = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
            if is_problem {
                return Response::from_parts(parts, body);
            }
            // A rejection or layer that answered on its own (e.g. a body over the limit).
            Problem::for_status(status, default_detail(status))
        }
        None => return Response::from_parts(parts, body),
    };
    let mut problem = problem;
    problem.instance = path.to_owned();
    problem.request_id = request_id.to_owned();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(body))
}

fn default_detail(status: StatusCode) -> String {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body exceeds the limit".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported content type".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    }
}

fn secure_headers(headers: &mut http::HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // API answers are per-user and short-lived: no cache may keep them unless a handler says so
    // (image downloads set their own Cache-Control).
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("private, no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(is_valid_request_id("abc-123_X.y"));
        assert!(is_valid_request_id(&"a".repeat(128)));
        assert!(!is_valid_request_id(&"a".repeat(129)));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id("a\nb"));
        assert!(!is_valid_request_id("<script>"));
    }

    #[test]
    fn only_well_formed_traceparents_are_carried() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_valid_traceparent(ok));
        assert!(!is_valid_traceparent(&ok.to_uppercase()));
        assert!(!is_valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
        assert!(!is_valid_traceparent("00-x\r\nInjected: 1"));
    }

    #[test]
    fn generated_ids_are_uuid_v7() {
        let id = new_request_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(is_valid_request_id(&id));
    }

    #[test]
    fn exotic_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
