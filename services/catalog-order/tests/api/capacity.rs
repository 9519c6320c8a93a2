//! docs/capacity.md's statements and round trips per request are what catalog-order does: each
//! public request is made a few times through a `testkit::StatementCounter` in front of the
//! service's pool, and the counts must equal the document's table (`UPDATE_CAPACITY=1` rewrites
//! it). Counts only, never times, so a busy machine cannot make the test fail.
//!
//! Catalog reads are measured with the response cache off: the cache-miss path. A hit, and a 304,
//! touch no database (cache.rs proves it).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use catalog_order::payments::signature;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use testkit::{DbCost, documented_table_is, eventually, table_row};
use time::OffsetDateTime;

use crate::support::{Shop, WEBHOOK_SECRET};

/// The outbox relay's statements (libs/jobs/src/outbox.rs): its claim, its mark, and the read of
/// the pending gauge after each pass.
fn relay(sql: &str) -> bool {
    sql.contains("published_at IS NULL") || sql.contains("SET published_at")
}

/// Work the service does whether or not a request asks: the relay's passes, the rate-limit purge,
/// and applying events (none arrive before the worker is added, at the end).
fn background(sql: &str) -> bool {
    relay(sql)
        || sql.starts_with("DELETE FROM rate_limits WHERE tat")
        || sql.contains("job_event_inbox")
}

/// Send `request`, which must answer `status`; its JSON body (Null when it has none).
async fn expect(request: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let r = request.send().await.unwrap();
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn png() -> Vec<u8> {
    use image::ImageEncoder;
    let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8, y as u8, 40]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), 16, 12, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[tokio::test]
async fn catalog_orders_statements_per_request_are_the_documented_ones() {
    let (mut shop, counter) = Shop::spawn_counting_statements_with(|s| {
        // The cache-miss path. Payments are opened with the fake provider's `delay` outcome, whose
        // webhook comes after this delay: the test sends the webhooks it measures.
        s.cache.cache_max_entries = 0;
        s.payments.payment_fake_delay = Duration::from_secs(3600);
    })
    .await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let a = shop.item(&admin, &cat, "TEA-1", 450, 100_000).await;
    let b = shop.item(&admin, &cat, "TEA-2", 650, 100_000).await;
    shop.item(&admin, &cat, "TEA-3", 850, 100_000).await;
    let ann = shop.customer("ann@example.com").await;

    let c = &shop.client;
    let url = |path: &str| shop.url(path);
    let keys = AtomicUsize::new(0);
    let key = || format!("key-{}", keys.fetch_add(1, Ordering::SeqCst));
    let lines = json!({"lines": [{"item_id": a, "quantity": 1}, {"item_id": b, "quantity": 1}]});
    let place = async || {
        let r = c.post(url("/v1/orders")).bearer_auth(&ann).json(&lines);
        expect(r.header("Idempotency-Key", key()), StatusCode::CREATED).await
    };
    let pay = async |order: Value| {
        let r = c
            .post(url(&format!("/v1/orders/{}/payment", id(&order))))
            .bearer_auth(&ann)
            .json(&json!({"test_outcome": "delay"}));
        expect(r.header("Idempotency-Key", key()), StatusCode::CREATED).await
    };
    let upload = async || {
        let form = Form::new().part("file", Part::bytes(png()).file_name("a.png"));
        let r = c
            .post(url(&format!("/v1/items/{a}/images")))
            .bearer_auth(&admin)
            .multipart(form);
        expect(r.header("Idempotency-Key", key()), StatusCode::ACCEPTED).await
    };
    let get = async |path: &str, token: &str| {
        expect(c.get(url(path)).bearer_auth(token), StatusCode::OK).await;
    };
    let nothing = async || {};

    let mut table = vec![vec![
        "request".to_owned(),
        "statements".to_owned(),
        "round trips".to_owned(),
    ]];
    let mut add = |r: Vec<String>| table.push(r);

    // Writes first, so that the reads after them find orders, lines, payments and images.
    add(counter
        .documented_row(background, "POST /v1/orders", &nothing, async |()| {
            place().await;
        })
        .await);
    add(counter
        .documented_row(
            background,
            "POST /v1/orders/{id}/payment",
            &place,
            async |order| {
                pay(order).await;
            },
        )
        .await);
    add(counter.documented_row(
            background,
            "POST /v1/payments/webhook",
        async || pay(place().await).await,
        async |payment| {
            let event = json!({"id": format!("evt_{}", key()), "type": "payment.succeeded",
                "created": OffsetDateTime::now_utc().unix_timestamp(),
                "data": {"payment_id": payment["id"], "order_id": payment["order_id"],
                         "amount_cents": payment["amount_cents"], "currency": payment["currency"]}});
            let body = serde_json::to_vec(&event).unwrap();
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let r = c
                .post(url("/v1/payments/webhook"))
                .header("content-type", "application/json")
                .header("Payment-Signature", signature::sign(WEBHOOK_SECRET, now, &body))
                .body(body);
            let answer = expect(r, StatusCode::OK).await;
            assert_eq!(answer["result"], "applied", "{answer}");
        },
    )
    .await);
    add(counter
        .documented_row(
            background,
            "POST /v1/orders/{id}/cancel",
            &place,
            async |order| {
                let r = c
                    .post(url(&format!("/v1/orders/{}/cancel", id(&order))))
                    .bearer_auth(&ann);
                expect(r, StatusCode::OK).await;
            },
        )
        .await);
    add(counter
        .documented_row(background, "PUT /v1/customers/me", &nothing, async |()| {
            let profile = json!({"full_name": "Ann", "phone": "", "address_line": "1 Tea Road",
                             "city": "Leeds", "postal_code": "LS1", "country": "GB"});
            let r = c
                .put(url("/v1/customers/me"))
                .bearer_auth(&ann)
                .json(&profile);
            expect(r, StatusCode::OK).await;
        })
        .await);
    add(counter
        .documented_row(
            background,
            "POST /v1/items/{id}/images",
            &nothing,
            async |()| {
                upload().await;
            },
        )
        .await);
    add(counter
        .documented_row(background, "GET /v1/jobs/{id}", &upload, async |job| {
            get(
                &format!("/v1/jobs/{}", job["job_id"].as_str().unwrap()),
                admin.as_str(),
            )
            .await
        })
        .await);
    add(counter
        .documented_row(background, "GET /v1/orders/{id}", &place, async |order| {
            get(&format!("/v1/orders/{}", id(&order)), ann.as_str()).await
        })
        .await);
    for (label, path) in [
        ("GET /v1/orders", "/v1/orders".to_owned()),
        ("GET /v1/customers/me", "/v1/customers/me".to_owned()),
        (
            "GET /v1/customers/me/export",
            "/v1/customers/me/export".to_owned(),
        ),
        ("GET /v1/categories", "/v1/categories".to_owned()),
        ("GET /v1/categories/{id}", format!("/v1/categories/{cat}")),
        (
            "GET /v1/items",
            format!("/v1/items?category={cat}&sort=price"),
        ),
        ("GET /v1/items?q=", "/v1/items?q=item".to_owned()),
        (
            "GET /v1/items?q= (no match: similar words)",
            "/v1/items?q=iten".to_owned(),
        ),
        (
            "GET /v1/items/facets?q=",
            "/v1/items/facets?q=item".to_owned(),
        ),
        ("GET /v1/items/{id}", format!("/v1/items/{a}")),
        ("GET /v1/items/{id}/images", format!("/v1/items/{a}/images")),
    ] {
        add(counter
            .documented_row(background, label, &nothing, async |()| {
                get(&path, ann.as_str()).await
            })
            .await);
    }

    // The relay has published every job written above, one pass at a time, and polled in
    // between; each pass is a transaction followed by a read of the pending gauge.
    let passes = counter.units(|sql| sql.contains("published_at IS NULL ORDER BY"));
    let gauges = counter.units(|sql| sql.contains("min(created_at)"));
    let (publishing, idle): (Vec<&DbCost>, Vec<&DbCost>) = passes
        .iter()
        .partition(|u| u.sql.iter().any(|s| s.contains("SET published_at")));
    table_row("the pending gauge", &gauges);
    let gauge = &gauges[0];
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
    add(table_row(
        "outbox relay: a pass that publishes (≤ 100 jobs)",
        &with_gauge(publishing),
    ));
    add(table_row(
        "outbox relay: a pass that finds nothing (each second)",
        &with_gauge(idle),
    ));

    // A worker runs the e-mail and thumbnail jobs now; their events come back and are applied.
    shop.add_worker().await;
    let db = shop.db.pool().await;
    let finished = eventually(Duration::from_secs(60), || async {
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM jobs WHERE status <> 'succeeded')
                  + (SELECT count(*) FROM item_images WHERE status <> 'ready')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        unfinished == 0
    })
    .await;
    assert!(finished, "the worker did not finish every job within 60 s");
    let events = counter.units(|sql| sql.contains("INSERT INTO job_event_inbox"));
    let of = |marker: &str| -> Vec<&DbCost> {
        events
            .iter()
            .filter(|u| u.sql.iter().any(|s| s.contains(marker)))
            .collect()
    };
    add(table_row(
        "event applied: `job.status` (two a job)",
        of("UPDATE jobs SET status"),
    ));
    add(table_row(
        "event applied: `image.processed`",
        of("item_images"),
    ));

    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/capacity.md");
    documented_table_is(&doc, "statements:catalog-order", &table, "UPDATE_CAPACITY");
}
