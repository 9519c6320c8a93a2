//! Prometheus metrics: one registry per service (tests run several in one process), every
//! series labelled with `service`, served on the metrics port only.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{HeaderValue, header};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for request latency, in seconds: fine below 100 ms where an API should live.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    /// `rate_limited_total{scope}`: requests refused by a rate limit.
    pub rate_limited: IntCounterVec,
    /// `rate_limit_unavailable_total{scope}`: requests let through because the shared limit
    /// store could not answer (fail open).
    pub rate_limit_unavailable: IntCounterVec,
}

/// RED metrics of the HTTP stack.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    pub in_flight: IntGauge,
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    /// A registry whose every series carries `service="<name>"`, with the HTTP metrics,
    /// `build_info` and the process collector registered.
    pub fn new(service: &str, version: &str) -> Result<Self, prometheus::Error> {
        let labels = HashMap::from([("service".to_owned(), service.to_owned())]);
        let registry = Registry::new_custom(None, Some(labels))?;

        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from receiving a request to sending its response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let in_flight = IntGauge::new(
            "http_requests_in_flight",
            "HTTP requests being handled right now.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;

        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; labels tell which build is running.",
            ),
            &["version", "revision"],
        )?;
        build_info
            .with_label_values(&[
                version,
                option_env!("STOREFRONT_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        registry.register(Box::new(build_info))?;

        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused with 429 by a rate limit, by limit.",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        let rate_limit_unavailable = IntCounterVec::new(
            Opts::new(
                "rate_limit_unavailable_total",
                "Requests let through unchecked because the rate-limit store (PostgreSQL) could not answer, by limit.",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(rate_limit_unavailable.clone()))?;

        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Metrics {
            registry,
            http: HttpMetrics {
                requests,
                duration,
                in_flight,
            },
            rate_limited,
            rate_limit_unavailable,
        })
    }

    /// Register a service's own metric.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// The router of the metrics listener: `GET /metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(serve_metrics))
            .with_state(self.clone())
    }
}

async fn serve_metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_the_service_label() {
        let m = Metrics::new("auth", "1.2.3").unwrap();
        m.http
            .observe("GET", "/v1/items/{id}", 200, Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/v1/items/{id}",status="200",service="auth"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"build_info{revision="#), "{text}");
        assert!(text.contains(r#"version="1.2.3""#), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
