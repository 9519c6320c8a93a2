//! Logging: one flat JSON object per line in prod and test, readable text in dev.
//!
//! The JSON layer copies the fields of every enclosing span into each line, so a line logged
//! anywhere inside a request carries that request's `request_id`, `method` and `route` without
//! the code that logs it knowing about them.

use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Install the global subscriber and a panic hook that logs through it. `RUST_LOG` filters
/// (default `info`). Safe to call more than once: later calls do nothing.
pub fn init(service: &'static str, version: &'static str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
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
    }
}

/// Panics are logged as errors inside the current span (so with the request id), instead of the
/// default hook's bare line on stderr.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
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
