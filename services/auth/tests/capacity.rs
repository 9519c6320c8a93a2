//! docs/capacity.md's statements and round trips per request are what auth does: each public
//! request is made a few times through a `testkit::StatementCounter` in front of the service's
//! pool, and the counts must equal the document's table (`UPDATE_CAPACITY=1` rewrites it).
//! Counts only, never times, so a busy machine cannot make the test fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use platform::config::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{PASSWORD, TestAuth, token};
use testkit::{DbCost, StatementCounter, documented_table_is, table_row};

/// The outbox relays' statements (libs/jobs/src/outbox.rs): claim, mark, and the read of the
/// pending gauge after each pass.
fn relay(sql: &str) -> bool {
    sql.contains("published_at IS NULL") || sql.contains("SET published_at")
}

/// Work the service does whether or not a request asks: the relays' passes and the rate-limit
/// purge.
fn background(sql: &str) -> bool {
    relay(sql) || sql.starts_with("DELETE FROM rate_limits WHERE tat")
}

async fn expect(request: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let r = request.send().await.unwrap();
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn auths_statements_per_request_are_the_documented_ones() {
    let slot: Arc<Mutex<Option<StatementCounter>>> = Arc::default();
    let filled = slot.clone();
    let auth = TestAuth::spawn_with(move |s| {
        let url = s
            .database
            .database_url
            .as_ref()
            .unwrap()
            .expose()
            .to_owned();
        let counter = StatementCounter::start(&testkit::host_port(&url));
        s.database.database_url = Some(Secret::new(counter.rewrite(&url)));
        *filled.lock().unwrap() = Some(counter);
    })
    .await;
    let counter = slot.lock().unwrap().take().unwrap();
    let c = &auth.client;
    let url = |path: &str| auth.url(path);
    let emails = AtomicUsize::new(0);
    let ann = "ann@example.com";
    auth.register(ann).await;
    let login = async || {
        let r = c
            .post(url("/v1/auth/login"))
            .json(&json!({"email": ann, "password": PASSWORD}));
        expect(r, StatusCode::OK).await
    };
    let nothing = async || {};

    let mut table = vec![vec![
        "request".to_owned(),
        "statements".to_owned(),
        "round trips".to_owned(),
    ]];
    table.push(
        counter
            .documented_row(background, "POST /v1/auth/register", &nothing, async |()| {
                let n = emails.fetch_add(1, Ordering::SeqCst);
                let body = json!({"email": format!("user{n}@example.com"), "password": PASSWORD});
                expect(
                    c.post(url("/v1/auth/register")).json(&body),
                    StatusCode::CREATED,
                )
                .await;
            })
            .await,
    );
    table.push(
        counter
            .documented_row(background, "POST /v1/auth/login", &nothing, async |()| {
                login().await;
            })
            .await,
    );
    table.push(
        counter
            .documented_row(
                background,
                "POST /v1/auth/refresh",
                &login,
                async |pair: Value| {
                    let body = json!({"refresh_token": token(&pair, "refresh_token")});
                    expect(c.post(url("/v1/auth/refresh")).json(&body), StatusCode::OK).await;
                },
            )
            .await,
    );
    table.push(
        counter
            .documented_row(
                background,
                "POST /v1/auth/logout",
                &login,
                async |pair: Value| {
                    let body = json!({"refresh_token": token(&pair, "refresh_token")});
                    let r = c.post(url("/v1/auth/logout")).json(&body);
                    expect(r, StatusCode::NO_CONTENT).await;
                },
            )
            .await,
    );
    table.push(
        counter
            .documented_row(
                background,
                "GET /v1/auth/me",
                &login,
                async |pair: Value| {
                    let r = c
                        .get(url("/v1/auth/me"))
                        .bearer_auth(token(&pair, "access_token"));
                    expect(r, StatusCode::OK).await;
                },
            )
            .await,
    );
    table.push(
        counter
            .documented_row(
                background,
                "GET /.well-known/jwks.json",
                &nothing,
                async |()| {
                    expect(c.get(url("/.well-known/jwks.json")), StatusCode::OK).await;
                },
            )
            .await,
    );

    // The job outbox's relay has published the verification e-mails of the registrations, one
    // pass at a time; both relays polled in between. Each pass is a transaction followed by a
    // read of the pending gauge.
    let passes = counter.units(|sql| sql.contains("published_at IS NULL ORDER BY"));
    let gauges = counter.units(|sql| sql.contains("min(created_at)"));
    table_row("the pending gauge", &gauges);
    let gauge = &gauges[0];
    let (publishing, idle): (Vec<&DbCost>, Vec<&DbCost>) = passes
        .iter()
        .partition(|u| u.sql.iter().any(|s| s.contains("SET published_at")));
    let with_gauge = |passes: Vec<&DbCost>| -> Vec<DbCost> {
        passes
            .iter()
            .map(|p| DbCost {
                statements: p.statements + gauge.statements,
                round_trips: p.round_trips + gauge.round_trips,
                sql: p.sql.clone(),
            })
            .collect()
    };
    table.push(table_row(
        "outbox relay: a pass that publishes (≤ 100 jobs)",
        &with_gauge(publishing),
    ));
    table.push(table_row(
        "outbox relay: a pass that finds nothing (each second, each of 2 outboxes)",
        &with_gauge(idle),
    ));

    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/capacity.md");
    documented_table_is(&doc, "statements:auth", &table, "UPDATE_CAPACITY");
}
