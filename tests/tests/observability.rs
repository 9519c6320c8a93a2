//! Observability across the real binaries: one image upload is one trace from the HTTP request
//! through the outbox relay and the worker to the `image.processed` event (collected by a test
//! OTLP receiver), log lines carry trace ids, a 5xx reaches a test Sentry endpoint without
//! personal data, and the dashboards query only metrics the services really expose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use support::{Deps, Service, Stack, admin_and_customer, mug_for_sale};
use testkit::eventually;

#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
}

#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<Span>>>,
    sentry: Arc<Mutex<Vec<String>>>,
}

/// An OTLP/HTTP trace receiver and a Sentry envelope endpoint on one local port.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/api/{project}/envelope/", post(envelope))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("127.0.0.1:{}", addr.port()), received)
}

async fn traces(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut spans = received.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                });
            }
        }
    }
    ""
}

async fn envelope(State(received): State<Received>, body: Bytes) -> &'static str {
    received
        .sentry
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    "{}"
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn traced_env(env: &mut HashMap<String, String>, receiver: &str) {
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        format!("http://{receiver}"),
    );
    // Export quickly, so the test need not wait for the default 5 s batches.
    env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into());
}

fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn one_upload_is_one_trace_from_http_through_the_worker_to_the_event() {
    let (receiver, received) = receiver().await;
    let deps = Deps::new().await;
    let stack = Stack::start(&deps, |_, env| traced_env(env, &receiver)).await;
    let (admin, _) = admin_and_customer(&deps, &stack.auth).await;
    let client = testkit::http_client();
    let api = |path: &str| stack.api(path);
    let item = mug_for_sale(&client, &stack, &admin).await;

    // The caller's own trace: everything the upload causes must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(jpeg()));
    let r = client
        .post(api(&format!(
            "/v1/items/{}/images",
            item["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("x-request-id", "upload-trace-1")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let accepted: Value = r.json().await.unwrap();
    let image = accepted["image_id"].as_str().unwrap().to_owned();
    let ready = eventually(Duration::from_secs(20), || async {
        let list: Value = client
            .get(api(&format!(
                "/v1/items/{}/images",
                item["id"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list[0]["id"] == image.as_str() && list[0]["status"] == "ready"
    })
    .await;
    assert!(ready, "the image never became ready");

    let of_trace = || -> Vec<Span> {
        received
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    };
    let named = |spans: &[Span], prefix: &str| -> Option<Span> {
        spans.iter().find(|s| s.name.starts_with(prefix)).cloned()
    };
    let complete = eventually(Duration::from_secs(15), || async {
        let spans = of_trace();
        spans
            .iter()
            .any(|s| s.name.starts_with("apply ") && s.name.ends_with("image.processed"))
            && named(&spans, "job image.thumbnail").is_some()
    })
    .await;
    let spans = of_trace();
    assert!(complete, "incomplete trace: {spans:#?}");
    let http = named(&spans, "POST /v1/items/{id}/images").expect("the request's span");
    let publish = named(&spans, "publish image.thumbnail").expect("the relay's span");
    let job = named(&spans, "job image.thumbnail").expect("the worker's span");
    let applied = spans
        .iter()
        .find(|s| s.name.starts_with("apply ") && s.name.ends_with("image.processed"))
        .unwrap();
    assert_eq!(
        http.parent, caller_span,
        "the request joins the caller's trace"
    );
    assert_eq!(
        publish.parent, http.span_id,
        "the relay hop is the request's child"
    );
    assert_eq!(
        job.parent, publish.span_id,
        "the worker's job is the relay hop's child"
    );
    assert_eq!(
        applied.parent, job.span_id,
        "the event is applied under the job"
    );
    assert!(http.service.contains("catalog-order") && job.service.contains("worker"));
    // Database calls are spans of the request.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "db images.insert" && s.parent == http.span_id),
        "{spans:#?}"
    );

    // Every log line of the request carries its trace id.
    let lines: Vec<Value> = stack
        .catalog
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["request_id"] == "upload-trace-1")
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert_eq!(line["trace_id"], trace_id, "{line}");
        assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16));
    }
    let worker_lines: Vec<Value> = stack
        .worker
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["trace_id"] == trace_id)
        .collect();
    assert!(
        !worker_lines.is_empty(),
        "the worker's lines carry the trace"
    );

    // The dashboards ask only for metrics the services expose.
    let mut exposed = BTreeSet::new();
    for service in [&stack.auth, &stack.catalog, &stack.worker] {
        let text = testkit::get(format!("{}/metrics", service.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in text.lines() {
            if let Some(name) = line.split(['{', ' ']).next()
                && !line.starts_with('#')
                && !name.is_empty()
            {
                exposed.insert(name.to_owned());
            }
        }
    }
    check_dashboards(&exposed);
}

/// Every panel query of `helm/storefront/dashboards/*.json` parses as PromQL (promtool) and names
/// only metrics in `exposed`.
fn check_dashboards(exposed: &BTreeSet<String>) {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/storefront/dashboards");
    let mut exprs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                exprs.push((
                    format!("{} / {}", path.display(), panel["title"]),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    assert!(exprs.len() > 20, "{} panel queries", exprs.len());
    const PROMQL: &[&str] = &[
        "sum",
        "by",
        "rate",
        "increase",
        "max",
        "histogram_quantile",
        "without",
        "on",
        "and",
        "or",
        "unless",
        "le",
        "service",
        "route",
        "status",
        "kind",
        "outcome",
        "state",
        "scope",
        "version",
        "revision",
        "method",
        "namespace",
        "result",
        "unit",
        "database",
    ];
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, (panel, expr)) in exprs.iter().enumerate() {
        let concrete = expr
            .replace("$__rate_interval", "5m")
            .replace("$service", ".*")
            .replace("$namespace", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&concrete).unwrap()
        ));
        // Identifiers outside label matchers and strings are metric names or PromQL words.
        let mut outside = String::new();
        let mut depth = 0;
        let mut quoted = false;
        for c in concrete.chars() {
            match c {
                '"' => quoted = !quoted,
                '{' if !quoted => depth += 1,
                '}' if !quoted => depth -= 1,
                _ if depth == 0 && !quoted => outside.push(c),
                _ => {}
            }
        }
        for word in outside
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic()))
        {
            if PROMQL.contains(&word)
                || word.ends_with('m') && word[..word.len() - 1].parse::<u32>().is_ok()
            {
                continue;
            }
            assert!(
                exposed.contains(word),
                "{panel}: `{word}` is not exposed by any service"
            );
        }
    }
    let file = std::env::temp_dir().join(format!("sf-dashboards-{}.yaml", std::process::id()));
    std::fs::write(&file, rules).unwrap();
    match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => assert!(
            std::env::var("REQUIRE_PROMTOOL").is_err(),
            "promtool is required here"
        ),
    }
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_5xx_reaches_sentry_tagged_and_without_personal_data() {
    let (receiver, received) = receiver().await;
    let deps = Deps::new().await;
    let auth = Service::start("auth", &deps.env("auth"));
    auth.wait_ready(Duration::from_secs(20)).await;
    let (_, ann) = admin_and_customer(&deps, &auth).await;
    // catalog-order with its database out of reach: every request that needs it is a 503.
    let mut env = deps.env("catalog-order");
    env.insert(
        "DATABASE_URL".into(),
        "postgres://postgres@127.0.0.1:1/catalog".into(),
    );
    env.insert(
        "AUTH_JWKS_URL".into(),
        format!("{}/.well-known/jwks.json", auth.base),
    );
    // And a trace collector nobody listens at: exporting must cost requests nothing.
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "http://127.0.0.1:1".into(),
    );
    env.insert(
        "SENTRY_DSN".into(),
        format!("http://0123456789abcdef0123456789abcdef@{receiver}/42"),
    );
    let catalog = Service::start("catalog-order", &env);
    let live = eventually(Duration::from_secs(20), || async {
        testkit::get(format!("{}/health/live", catalog.base))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(live);
    let r = testkit::http_client()
        .post(format!("{}/v1/orders", catalog.base))
        .bearer_auth(&ann)
        .header("x-request-id", "sentry-req-1")
        .json(
            &json!({"lines": [{"item_id": "0190a5f0-0000-7000-8000-000000000000", "quantity": 1}],
                      "note": "secret-body-marker"}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_server_error());
    let r = testkit::http_client()
        .get(format!("{}/v1/items", catalog.base))
        .bearer_auth(&ann)
        .header("x-request-id", "sentry-req-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let got = eventually(Duration::from_secs(15), || async {
        received
            .sentry
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("sentry-req-2"))
    })
    .await;
    let events = received.sentry.lock().unwrap().clone();
    assert!(got, "no Sentry event: {events:?}");
    let event = events.iter().find(|e| e.contains("sentry-req-2")).unwrap();
    for tag in [
        "GET /v1/items answered 503",
        r#""service":"catalog-order""#,
        r#""environment":"test""#,
        "catalog-order@",
    ] {
        assert!(event.contains(tag), "{tag} missing from {event}");
    }
    for event in &events {
        assert!(!event.contains(&ann), "a token reached Sentry");
        assert!(
            !event.contains("secret-body-marker"),
            "a body reached Sentry"
        );
        assert!(!event.contains("/health/"), "a probe was reported");
    }
}
