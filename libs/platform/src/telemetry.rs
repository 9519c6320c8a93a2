//! Logging, traces and error tracking.
//!
//! - Logs: one flat JSON object per line in prod and test, readable text in dev. The JSON layer
//!   copies the fields of every enclosing span into each line, so a line logged anywhere inside a
//!   request carries that request's `request_id`, `method` and `route` — and, when traces are on,
//!   its `trace_id` and `span_id` — without the code that logs it knowing about them.
//! - Traces: `tracing` spans exported over OTLP/HTTP(S) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//!   with the headers of `OTEL_EXPORTER_OTLP_HEADERS` (a hosted collector's credentials) and the
//!   TLS trust of [`crate::http_client`], from the batch processor's own thread: a slow or absent collector costs requests nothing
//!   (spans are dropped when its queue is full; failures are logged as warnings). W3C trace
//!   context crosses HTTP and NATS through [`set_parent`] and [`traceparent_of`].
//! - Errors: with `SENTRY_DSN`, panics and 5xx answers go to Sentry, tagged with service,
//!   version, environment, route and request id — never bodies, headers or tokens.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::config::parse_otlp_headers;
use crate::config::{LogFormat, PlatformSettings};

static TRACER_PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static SENTRY: Mutex<Option<sentry::ClientInitGuard>> = Mutex::new(None);

/// Install the global subscriber (logs, and traces when configured), the panic hook and Sentry.
/// `RUST_LOG` filters (default `info`). Safe to call more than once: later calls do nothing.
pub fn init(service: &'static str, version: &'static str, platform: &PlatformSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = tracer_provider(
        service,
        version,
        platform,
        &crate::http_client::Trust::from_env(),
    )
    .unwrap_or_else(|e| {
        eprintln!("{service}: traces are off: the OTLP exporter failed to start: {e}");
        None
    });
    let traces = provider.map(|provider| {
        let tracer = provider.tracer(service);
        let _ = TRACER_PROVIDER.set(provider);
        tracing_opentelemetry::layer().with_tracer(tracer)
    });
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let installed = match platform.log_format() {
        LogFormat::Json => registry
            .with(JsonLayer {
                service,
                version,
                sink: Sink::Stdout,
            })
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
    };
    if installed.is_ok() {
        install_panic_hook();
        init_sentry(service, version, platform);
    }
}

/// The tracer provider the settings describe: spans batched to `{endpoint}/v1/traces` over
/// OTLP/HTTP, TLS trusting `trust` (see [`crate::http_client`]), the headers of
/// `OTEL_EXPORTER_OTLP_HEADERS` on every export. `Ok(None)` when no endpoint is set. Call it
/// outside an async runtime or from any thread: the blocking client is built on a thread of its
/// own.
pub fn tracer_provider(
    service: &'static str,
    version: &'static str,
    platform: &PlatformSettings,
    trust: &crate::http_client::Trust,
) -> Result<Option<SdkTracerProvider>, String> {
    let Some(base) = platform.otel_exporter_otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    let endpoint = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{}/v1/traces", base.trim_end_matches('/'))
    };
    let headers = match &platform.otel_exporter_otlp_headers {
        Some(raw) => parse_otlp_headers(raw.expose())
            .map_err(|e| format!("OTEL_EXPORTER_OTLP_HEADERS: {e}"))?,
        None => http::HeaderMap::new(),
    };
    let builder = crate::http_client::blocking_builder_with(trust)
        .map_err(|e| e.to_string())?
        .default_headers(headers);
    // reqwest's blocking client must not be built (or dropped) inside an async runtime.
    let client = std::thread::spawn(move || builder.build())
        .join()
        .map_err(|_| "building the HTTP client panicked".to_owned())?
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            platform
                .otel_service_name
                .clone()
                .unwrap_or_else(|| service.to_owned()),
        )
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", version),
            opentelemetry::KeyValue::new(
                "deployment.environment.name",
                platform.app_env.to_string(),
            ),
        ])
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                platform.otel_traces_sampler_arg,
            ))))
            .with_resource(resource)
            .build(),
    ))
}

fn init_sentry(service: &'static str, version: &'static str, platform: &PlatformSettings) {
    let Some(dsn) = platform
        .sentry_dsn
        .as_ref()
        .map(crate::config::Secret::expose)
    else {
        return;
    };
    let mut options = sentry::ClientOptions::default();
    options.release = Some(format!("{service}@{version}").into());
    options.environment = Some(platform.app_env.to_string().into());
    options.send_default_pii = false;
    options.attach_stacktrace = true;
    let guard = sentry::init((dsn, options));
    sentry::configure_scope(|scope| scope.set_tag("service", service));
    if let Ok(mut slot) = SENTRY.lock() {
        *slot = Some(guard);
    }
}

/// Send what is still buffered (spans, Sentry events); call once, at exit.
pub fn flush() {
    if let Some(provider) = TRACER_PROVIDER.get() {
        let _ = provider.force_flush();
    }
    if let Ok(mut slot) = SENTRY.lock()
        && let Some(guard) = slot.take()
    {
        guard.flush(Some(std::time::Duration::from_secs(2)));
    }
}

/// Report a 5xx answer to Sentry (a no-op without `SENTRY_DSN`). Only labels go out: the
/// request's body, headers and tokens never do.
pub fn report_server_error(method: &str, route: &str, status: u16, request_id: &str) {
    if sentry::Hub::current().client().is_none() {
        return;
    }
    sentry::with_scope(
        |scope| {
            scope.set_tag("request_id", request_id);
            scope.set_tag("route", route);
            scope.set_tag("method", method);
            scope.set_tag("status", status);
        },
        || {
            sentry::capture_message(
                &format!("{method} {route} answered {status}"),
                sentry::Level::Error,
            )
        },
    );
}

/// The W3C trace-context header, on HTTP requests and NATS messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// Make `span` a child of the W3C `traceparent` (when well-formed).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The W3C `traceparent` naming `span`, to pass to whatever it calls or publishes; `None` when
/// traces are off (then callers pass on what they received).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// `trace_id` and `span_id` of the span with this id, when traces are on.
fn trace_ids(id: &Id) -> Option<(String, String)> {
    tracing::dispatcher::get_default(|dispatch| {
        let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

/// The message a panic carries (`panic!`'s text, or what a library unwound with), for a hook or a
/// `catch_unwind`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Panics are logged as errors inside the current span (so with the request id), instead of the
/// default hook's bare line on stderr.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location = %location, "panic");
    }));
}

#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    #[cfg(test)]
    Capture(&'static std::sync::Mutex<Vec<u8>>),
}

/// Fields recorded on a span, kept in its extensions.
#[derive(Default)]
struct SpanFields(Map<String, Value>);

pub struct JsonLayer {
    service: &'static str,
    version: &'static str,
    sink: Sink,
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(fields) = extensions.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::from(now));
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str().to_ascii_lowercase()),
        );
        line.insert("service".into(), Value::from(self.service));
        line.insert("version".into(), Value::from(self.version));
        line.insert("target".into(), Value::from(event.metadata().target()));
        let innermost = ctx
            .event_scope(event)
            .and_then(|mut scope| scope.next())
            .map(|span| span.id());
        if let Some((trace_id, span_id)) = innermost.as_ref().and_then(trace_ids) {
            line.insert("trace_id".into(), Value::from(trace_id));
            line.insert("span_id".into(), Value::from(span_id));
        }
        // Outer spans first, so an inner span's field wins over an outer one of the same name.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            return;
        };
        bytes.push(b'\n');
        match self.sink {
            Sink::Stdout => {
                let _ = std::io::stdout().lock().write_all(&bytes);
            }
            #[cfg(test)]
            Sink::Capture(buffer) => {
                if let Ok(mut b) = buffer.lock() {
                    b.extend_from_slice(&bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    #[test]
    fn json_lines_are_flat_and_carry_span_fields() {
        let subscriber = tracing_subscriber::registry().with(JsonLayer {
            service: "auth",
            version: "9.9.9",
            sink: Sink::Capture(&CAPTURED),
        });
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("http_request", request_id = "req-1", route = "/x/{id}");
            let _entered = span.enter();
            tracing::info!(status = 201u64, "request completed");
        });
        let text = String::from_utf8(CAPTURED.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["service"], "auth");
        assert_eq!(line["version"], "9.9.9");
        assert_eq!(line["level"], "info");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["route"], "/x/{id}");
        assert_eq!(line["status"], 201);
        assert_eq!(line["message"], "request completed");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
