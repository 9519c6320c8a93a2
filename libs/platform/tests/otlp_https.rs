//! Traces to a hosted collector: the OTLP exporter sends over HTTPS to an endpoint signed by a CA
//! made for the test, to `/v1/traces`, with the headers of `OTEL_EXPORTER_OTLP_HEADERS`
//! (percent-decoded); without that CA it sends nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry::trace::{Tracer, TracerProvider as _};
use platform::config::{PlatformSettings, Secret};
use platform::http_client::Trust;
use platform::telemetry::tracer_provider;
use testkit::tls::HttpsServer;

#[derive(Debug, Clone)]
struct Export {
    path: String,
    authorization: Option<String>,
    tenant: Option<String>,
    body: Vec<u8>,
}

type Received = Arc<Mutex<Vec<Export>>>;

async fn record(
    State(received): State<Received>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    received.lock().unwrap().push(Export {
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        tenant: header("x-scope-orgid"),
        body: body.to_vec(),
    });
    StatusCode::OK
}

/// A collector on HTTPS (on a runtime of its own: the exporter's blocking client must live
/// outside any runtime) and the settings pointing at it.
fn collector() -> (
    tokio::runtime::Runtime,
    HttpsServer,
    Received,
    PlatformSettings,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received = Received::default();
    let router = Router::new().fallback(record).with_state(received.clone());
    let server = runtime.block_on(HttpsServer::start(router));
    let mut settings = PlatformSettings::with_ports(0, 0);
    settings.otel_exporter_otlp_endpoint = Some(server.base.clone());
    settings.otel_exporter_otlp_headers = Some(Secret::new(
        "Authorization=Bearer%20collector-token%3D, x-scope-orgid=shop-1",
    ));
    (runtime, server, received, settings)
}

#[test]
fn spans_reach_an_https_collector_with_the_configured_headers() {
    let (_runtime, server, received, settings) = collector();
    let provider = tracer_provider(
        "otlp-test",
        "1.2.3",
        &settings,
        &Trust::with_extra_ca_file(&server.ca_file),
    )
    .unwrap()
    .expect("an endpoint is set");
    provider
        .tracer("otlp-test")
        .in_span("checkout over tls", |_| {});
    provider.force_flush().unwrap();

    let exports = received.lock().unwrap().clone();
    assert_eq!(exports.len(), 1, "{exports:?}");
    let export = &exports[0];
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(
        export.authorization.as_deref(),
        Some("Bearer collector-token=")
    );
    assert_eq!(export.tenant.as_deref(), Some("shop-1"));
    // The protobuf body carries the span's name and the service's.
    let has = |needle: &[u8]| export.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"checkout over tls") && has(b"otlp-test"));
    provider.shutdown().unwrap();
}

#[test]
fn without_the_collector_ca_nothing_is_sent() {
    let (_runtime, _server, received, settings) = collector();
    // The system bundle alone does not know the test CA.
    let provider = tracer_provider("otlp-test", "1.2.3", &settings, &Trust::default())
        .unwrap()
        .expect("an endpoint is set");
    provider
        .tracer("otlp-test")
        .in_span("checkout over tls", |_| {});
    let flushed = provider.force_flush();
    assert!(flushed.is_err(), "the export must fail: {flushed:?}");
    assert!(received.lock().unwrap().is_empty());
    let _ = provider.shutdown();
}
