//! The three real binaries: start-up, readiness, metrics, logs, configuration errors, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{Deps, Service, bin};

const SERVICES: [&str; 3] = ["auth", "catalog-order", "worker"];

#[tokio::test]
async fn all_three_services_become_ready_and_expose_metrics_on_their_own_port() {
    let deps = Deps::new().await;
    let services: Vec<Service> = SERVICES
        .iter()
        .map(|name| Service::start(name, &deps.env(name)))
        .collect();
    for service in &services {
        service.wait_ready(Duration::from_secs(20)).await;

        let metrics = testkit::get(format!("{}/metrics", service.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let service_label = format!(r#"service="{}""#, service.name);
        assert!(metrics.contains("build_info{"), "{metrics}");
        assert!(metrics.contains(&service_label), "{metrics}");
        assert!(
            metrics.contains("process_resident_memory_bytes"),
            "{metrics}"
        );
        assert!(metrics.contains(r#"route="/health/ready""#), "{metrics}");
        if service.name != "worker" {
            assert!(metrics.contains("db_pool_connections"), "{metrics}");
        }
        promtool_check(&metrics);

        let api = testkit::get(format!("{}/metrics", service.base))
            .await
            .unwrap();
        assert_eq!(
            api.status(),
            404,
            "{}: metrics exposed on the API port",
            service.name
        );
    }
}

/// `promtool check metrics` when promtool is installed (`make test` installs it where it can).
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("REQUIRE_PROMTOOL").is_err(),
            "REQUIRE_PROMTOOL is set but promtool is not installed"
        );
        eprintln!("promtool not installed; skipping the exposition lint");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_log_line_is_json_and_a_request_s_lines_carry_its_id() {
    let deps = Deps::new().await;
    let mut service = Service::start("catalog-order", &deps.env("catalog-order"));
    service.wait_ready(Duration::from_secs(20)).await;
    let r = testkit::http_client()
        .get(format!("{}/v1/nothing-here", service.base))
        .header("x-request-id", "e2e-log-check")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    service.signal("TERM");
    assert!(
        service
            .wait_exit(Duration::from_secs(10))
            .unwrap()
            .success()
    );

    let logs = service.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{logs}");
    for line in &lines {
        for field in [
            "timestamp",
            "level",
            "service",
            "version",
            "message",
            "target",
        ] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert_eq!(line["service"], "catalog-order");
    }
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "e2e-log-check")
        .unwrap_or_else(|| panic!("no line with the request id: {logs}"));
    assert_eq!(access["route"], "unmatched");
    assert_eq!(access["status"], 404);
    assert_eq!(access["method"], "GET");
    assert!(access["latency_ms"].is_number());
}

#[tokio::test]
async fn a_broken_prod_config_stops_start_up_listing_every_problem() {
    for name in SERVICES {
        let port = support::free_port();
        let out = Command::new(bin(name))
            .env_clear()
            .envs(testkit::coverage_env())
            .env("APP_ENV", "prod")
            .env("LOG_FORMAT", "pretty")
            .env("CORS_ALLOWED_ORIGINS", "*")
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("REQUEST_TIMEOUT", "whenever")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut expected = vec![
            "LOG_FORMAT",
            "CORS_ALLOWED_ORIGINS",
            "REQUEST_TIMEOUT",
            "NATS_URL",
        ];
        if name != "worker" {
            expected.push("DATABASE_URL");
        }
        match name {
            "auth" => expected.extend([
                "AUTH_SIGNING_KEYS",
                "CURSOR_SECRET",
                "ACCOUNT_LINK_BASE_URL",
            ]),
            "catalog-order" => expected.extend([
                "AUTH_JWKS_URL",
                "CURSOR_SECRET",
                // The default `fake` provider, and no webhook secrets.
                "PAYMENT_PROVIDER",
                "PAYMENT_WEBHOOK_SECRETS",
            ]),
            // The default `log` e-mail transport sends nothing.
            _ => expected.push("EMAIL_TRANSPORT"),
        }
        for setting in &expected {
            assert!(
                stderr.contains(&format!("- {setting}:")),
                "{name}: {setting} not in\n{stderr}"
            );
        }
        assert!(
            stderr.contains(&format!("{} problems", expected.len())),
            "{name}:\n{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{name} logged before validating its settings"
        );
    }
}

#[tokio::test]
async fn a_prod_config_with_a_default_database_password_is_refused() {
    let out = Command::new(bin("auth"))
        .env_clear()
        .envs(testkit::coverage_env())
        .env("APP_ENV", "prod")
        .env("DATABASE_URL", "postgres://postgres:postgres@db:5432/auth")
        .env("NATS_URL", "nats://nats:4222")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DATABASE_URL: uses a default password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("postgres:postgres"),
        "the secret was echoed: {stderr}"
    );
}

#[tokio::test]
async fn sigterm_under_load_fails_no_accepted_request_and_exits_zero() {
    let deps = Deps::new().await;
    let mut service = Service::start("catalog-order", &deps.env("catalog-order"));
    service.wait_ready(Duration::from_secs(20)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (stop, answered, base) = (stop.clone(), answered.clone(), service.base.clone());
        clients.push(tokio::spawn(async move {
            // A new connection per request: a refused connection is a request never accepted.
            platform::http_client::install_crypto_provider();
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("{base}/health/live")).send().await {
                    Ok(r) if r.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) if e.is_connect() => break,
                    Err(e) => failures.push(format!("{e:?}")),
                }
            }
            failures
        }));
    }
    // Under load, not after a fixed time: on a busy machine (coverage, two cores shared with
    // other tests) the first answers can take more than the half second this once waited.
    let started = std::time::Instant::now();
    while answered.load(Ordering::Relaxed) <= 50 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = answered.load(Ordering::Relaxed);
    service.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let status = service.wait_exit(Duration::from_secs(15));
        (status, service)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let (status, service) = status;
    assert!(before > 50, "the load never got going ({before} answers)");
    assert!(
        failures.is_empty(),
        "accepted requests failed: {failures:?}"
    );
    let status = status.expect("still running 15 s after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        service.logs()
    );
}

#[test]
fn every_binary_documents_its_commands() {
    for name in SERVICES {
        let out = Command::new(bin(name)).arg("--help").output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("serve"), "{name}: {help}");
        if name != "worker" {
            assert!(help.contains("migrate"), "{name}: {help}");
        }
    }
}

#[tokio::test]
async fn migrate_status_lists_the_schema_state() {
    let deps = Deps::new().await;
    for (name, db) in [("auth", &deps.auth_db), ("catalog-order", &deps.catalog_db)] {
        let out = Command::new(bin(name))
            .args(["migrate", "status"])
            .env("APP_ENV", "test")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
    }
}
