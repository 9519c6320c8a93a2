//! Liveness and readiness.
//!
//! `/health/live` answers 200 while the process can serve at all. `/health/ready` runs every
//! registered check (each under a timeout, all at once) and answers 503 problem+json naming the
//! failing ones; it is also 503 from the first moment of shutdown so load balancers stop sending.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::BoxFuture;
use http::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::extract::Json;
use crate::problem::{Problem, problem_response};

/// A check answers `Ok` when its dependency is usable, or why it is not.
pub type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<(&'static str, CheckFn)>,
    shutdown: CancellationToken,
}

impl Health {
    pub fn new(shutdown: CancellationToken) -> Self {
        Health {
            checks: Vec::new(),
            shutdown,
        }
    }

    pub fn add_check<F, Fut>(&mut self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((
            name,
            Arc::new(move || Box::pin(check()) as BoxFuture<'static, _>),
        ));
    }

    /// Run every check; `Err` lists the failures.
    pub async fn readiness(&self) -> BTreeMap<&'static str, Result<(), String>> {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let result = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
            };
            (*name, result)
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .collect()
    }

    pub fn routes(self) -> Router {
        Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .with_state(self)
    }
}

async fn live() -> Response {
    Json(json!({"status": "alive"})).into_response()
}

async fn ready(State(health): State<Health>) -> Response {
    if health.shutdown.is_cancelled() {
        return problem_response(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "shutting down",
        ));
    }
    let results = health.readiness().await;
    let failing: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| *name)
        .collect();
    let checks: serde_json::Map<String, Value> = results
        .iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(()) => json!({"status": "ok"}),
                Err(reason) => json!({"status": "failing", "reason": reason}),
            };
            ((*name).to_owned(), value)
        })
        .collect();
    if failing.is_empty() {
        return Json(json!({"status": "ready", "checks": checks})).into_response();
    }
    for (name, result) in &results {
        if let Err(reason) = result {
            tracing::warn!(check = name, reason = %reason, "readiness check failing");
        }
    }
    let mut problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Not ready",
        format!("failing checks: {}", failing.join(", ")),
    );
    problem.extra = Some(serde_json::Map::from_iter([(
        "checks".to_owned(),
        Value::Object(checks),
    )]));
    problem_response(problem)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get_ready(health: Health) -> (StatusCode, Value) {
        let response = health
            .routes()
            .oneshot(
                http::Request::get("/health/ready")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let problem = response.extensions().get::<Problem>().cloned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value = match problem {
            Some(p) => serde_json::to_value(p).unwrap(),
            None => serde_json::from_slice(&body).unwrap(),
        };
        (status, value)
    }

    #[tokio::test]
    async fn ready_names_the_failing_check() {
        let mut health = Health::new(CancellationToken::new());
        health.add_check("postgres", || async { Err("refused".to_owned()) });
        health.add_check("nats", || async { Ok(()) });
        let (status, body) = get_ready(health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["detail"], "failing checks: postgres");
        assert_eq!(body["checks"]["postgres"]["reason"], "refused");
        assert_eq!(body["checks"]["nats"]["status"], "ok");
    }

    #[tokio::test]
    async fn a_hanging_check_fails_after_the_timeout() {
        let mut health = Health::new(CancellationToken::new());
        health.add_check("slow", std::future::pending);
        let started = std::time::Instant::now();
        let (status, _) = get_ready(health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn readiness_turns_false_the_moment_shutdown_starts() {
        let token = CancellationToken::new();
        let mut health = Health::new(token.clone());
        health.add_check("postgres", || async { Ok(()) });
        assert_eq!(get_ready(health.clone()).await.0, StatusCode::OK);
        token.cancel();
        let (status, body) = get_ready(health).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["detail"], "shutting down");
    }
}
