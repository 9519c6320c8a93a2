//! The shared HTTP stack, as a client sees it: every mistake a problem+json 4xx with the request
//! id, no 500 for a client error, nothing internal leaked, metrics on their own port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use platform::config::PlatformSettings;
use platform::extract::{Json, Path, Query};
use platform::shutdown::Shutdown;
use platform::{ApiError, AppBuilder};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize)]
struct OrderLine {
    item_id: u32,
    quantity: u16,
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    lines: Vec<OrderLine>,
}

#[derive(Debug, Deserialize)]
struct Search {
    limit: Option<u8>,
}

fn routes() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|Json(order): Json<Order>| async move { Json(order) }),
        )
        .route(
            "/items/{id}",
            get(|Path(id): Path<uuid::Uuid>| async move { id.to_string() }),
        )
        .route(
            "/search",
            get(|Query(s): Query<Search>| async move { format!("{:?}", s.limit) }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret internal detail");
                }
                "unreachable"
            }),
        )
        .route(
            "/boom",
            get(|| async {
                Err::<(), _>(ApiError::internal(anyhow::anyhow!(
                    "connection to db password=hunter2 failed"
                )))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
}

struct TestServer {
    base: String,
    metrics: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_with(tweak: impl FnOnce(&mut PlatformSettings)) -> TestServer {
    let mut settings = PlatformSettings::with_ports(0, 0);
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings.metrics_addr = "127.0.0.1:0".parse().unwrap();
    settings.body_limit_bytes = 1024;
    settings.request_timeout = Duration::from_millis(250);
    settings.shutdown_grace_period = Duration::from_secs(5);
    tweak(&mut settings);
    let app = AppBuilder::new("test", "0.0.0", &settings)
        .unwrap()
        .build(routes())
        .await
        .unwrap();
    TestServer {
        base: format!("http://{}", app.http_addr()),
        metrics: format!("http://{}", app.metrics_addr()),
        shutdown: app.shutdown(),
        task: tokio::spawn(app.run()),
    }
}

async fn spawn() -> TestServer {
    spawn_with(|_| {}).await
}

fn client() -> reqwest::Client {
    testkit::http_client()
}

/// Assert the RFC 9457 shape and return the body.
async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["request_id"], request_id);
    for member in ["type", "title", "detail", "instance"] {
        assert!(body[member].is_string(), "{member} missing in {body}");
    }
    body
}

#[tokio::test]
async fn a_well_formed_request_id_is_echoed_and_a_bad_one_replaced() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/health/live", s.base))
        .header("x-request-id", "client-abc.1_2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-abc.1_2");

    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let r = client()
            .get(format!("{}/health/live", s.base))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_with_the_request_id() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/no/such/thing", s.base))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::NOT_FOUND).await;
    assert_eq!(body["request_id"], "trace-me");
    assert_eq!(body["instance"], "/no/such/thing");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let s = spawn().await;
    let r = client()
        .delete(format!("{}/echo", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let s = spawn().await;
    for body in ["{\"lines\": [", "not json", "", "{\"lines\": []} trailing"] {
        let r = client()
            .post(format!("{}/echo", s.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_a_422_naming_the_field() {
    let s = spawn().await;
    let r = client()
        .post(format!("{}/echo", s.base))
        .json(&serde_json::json!({"lines": [{"item_id": 1, "quantity": "lots"}]}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "lines[0].quantity");

    let r = client()
        .post(format!("{}/echo", s.base))
        .json(&serde_json::json!({"lines": [{"item_id": -1, "quantity": 70000}]}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "lines[0].item_id");
}

#[tokio::test]
async fn a_body_without_json_content_type_is_415() {
    let s = spawn().await;
    let r = client()
        .post(format!("{}/echo", s.base))
        .header("content-type", "text/plain")
        .body(r#"{"lines":[]}"#)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_the_valid_sized_one_passes() {
    let s = spawn().await;
    let huge = format!(r#"{{"lines":[],"pad":"{}"}}"#, "x".repeat(4096));
    let r = client()
        .post(format!("{}/echo", s.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;

    let r = client()
        .post(format!("{}/echo", s.base))
        .json(&serde_json::json!({"lines": [{"item_id": 7, "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["lines"][0]["quantity"], 2);
}

#[tokio::test]
async fn a_malformed_path_id_is_400_naming_the_parameter() {
    let s = spawn().await;
    for id in ["not-a-uuid", "1'%20OR%20'1'='1", "%00"] {
        let r = client()
            .get(format!("{}/items/{id}", s.base))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["errors"][0]["field"], "id", "{id}: {body}");
    }
}

#[tokio::test]
async fn a_bad_query_parameter_is_400_naming_it() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/search?limit=999", s.base))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["errors"][0]["field"], "limit");

    let r = client()
        .get(format!("{}/search?limit=20", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "Some(20)");
}

#[tokio::test]
async fn a_panicking_handler_answers_500_without_leaking_and_the_server_lives_on() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/panic", s.base))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(!body.to_string().contains("secret"), "{body}");

    let r = client()
        .get(format!("{}/health/live", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_internal_error_tells_the_client_nothing_but_the_request_id() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/boom", s.base))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::INTERNAL_SERVER_ERROR).await;
    let text = body.to_string();
    // (Not a bare "db": a random request id may contain those hex digits.)
    for leaked in ["hunter2", "password", "connection to db"] {
        assert!(!text.contains(leaked), "{leaked} leaked: {text}");
    }
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_503_problem() {
    let s = spawn().await;
    let r = client()
        .get(format!("{}/slow", s.base))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = spawn().await;
    for path in ["/health/live", "/nowhere"] {
        let r = client()
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let s = spawn_with(|settings| {
        settings.cors_allowed_origins = vec!["https://shop.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{}/echo", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let r = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_are_on_their_own_port_with_route_templates() {
    let s = spawn().await;
    let id = uuid::Uuid::new_v4();
    client()
        .get(format!("{}/items/{id}", s.base))
        .send()
        .await
        .unwrap();
    client()
        .get(format!("{}/random/{id}", s.base))
        .send()
        .await
        .unwrap();

    let r = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "metrics leak on the API port"
    );

    let text = client()
        .get(format!("{}/metrics", s.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/items/{id}",status="200",service="test"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains(&id.to_string()),
        "raw ids must never become labels"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("http_requests_in_flight"));
}

#[tokio::test]
async fn shutdown_turns_readiness_false_and_lets_in_flight_requests_finish() {
    let s = spawn_with(|settings| settings.request_timeout = Duration::from_secs(5)).await;
    let slow = tokio::spawn(
        client()
            .get(format!("{}/slow", s.base))
            .header("connection", "close")
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.shutdown.trigger();

    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "done");

    let finished = tokio::time::timeout(Duration::from_secs(5), s.task).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "app did not stop cleanly"
    );
    // The listener is gone: new clients are refused.
    assert!(
        client()
            .get(format!("{}/health/live", s.base))
            .send()
            .await
            .is_err()
    );
}
