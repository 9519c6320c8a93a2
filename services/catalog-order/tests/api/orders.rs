//! Placing orders: prices from the catalog, stock taken atomically under concurrency,
//! Idempotency-Key, validation, the state machine and who may see what.

use crate::support::{Shop, fields, problem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn order(shop: &Shop, token: &str, lines: Value, key: Option<&str>) -> reqwest::Response {
    let mut req = shop
        .client
        .post(shop.url("/v1/orders"))
        .bearer_auth(token)
        .json(&json!({"lines": lines}));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_order_is_priced_from_the_catalog_and_takes_stock() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tees").await;
    let tee = shop.item(&admin, &cat, "TEE-1", 1999, 10).await;
    let cap = shop.item(&admin, &cat, "CAP-1", 1, 5).await;
    let ann = shop.customer("ann@example.com").await;

    let r = order(
        &shop,
        &ann,
        json!([{"item_id": tee, "quantity": 3}, {"item_id": cap, "quantity": 2}]),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["status"], "pending");
    assert_eq!(o["currency"], "EUR");
    assert_eq!(o["total_cents"], 3 * 1999 + 2);
    assert_eq!(o["lines"][0]["unit_price_cents"], 1999);
    assert_eq!(o["lines"][0]["name"], "Item TEE-1");
    assert_eq!(o["lines"][1]["quantity"], 2);
    assert_eq!(shop.stock(&tee).await, 7);
    assert_eq!(shop.stock(&cap).await, 3);

    // A client cannot name its own price.
    let r = order(
        &shop,
        &ann,
        json!([{"item_id": tee, "quantity": 1, "unit_price_cents": 1}]),
        None,
    )
    .await;
    assert_eq!(
        fields(&problem(r, StatusCode::UNPROCESSABLE_ENTITY).await),
        ["lines[0].unit_price_cents"]
    );
}

#[tokio::test]
async fn forty_concurrent_orders_for_ten_in_stock_make_exactly_ten_orders() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "rare").await;
    let item = shop.item(&admin, &cat, "RARE-1", 500, 10).await;
    let mut buyers = Vec::new();
    for i in 0..8 {
        buyers.push(shop.customer(&format!("buyer{i}@example.com")).await);
    }
    let attempts = (0..40).map(|i| {
        order(
            &shop,
            &buyers[i % 8],
            json!([{"item_id": item, "quantity": 1}]),
            None,
        )
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (10, 30), "{statuses:?}");
    assert_eq!(shop.stock(&item).await, 0);
    assert_eq!(shop.count("orders").await, 10);
    assert_eq!(shop.count("order_lines").await, 10);
}

#[tokio::test]
async fn not_enough_stock_is_409_and_changes_nothing() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 5).await;
    let b = shop.item(&admin, &cat, "B-1", 100, 1).await;
    let ann = shop.customer("ann@example.com").await;
    let r = order(
        &shop,
        &ann,
        json!([{"item_id": a, "quantity": 2}, {"item_id": b, "quantity": 2}]),
        None,
    )
    .await;
    let p = problem(r, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains("Item B-1"), "{p}");
    assert_eq!(
        shop.stock(&a).await,
        5,
        "the first line's stock must not be taken"
    );
    assert_eq!(shop.count("orders").await, 0);
}

#[tokio::test]
async fn bad_orders_are_422_naming_the_line_and_write_nothing() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 5).await;
    let usd = {
        let r = shop.post("/v1/items", &admin, json!({"category_id": cat, "sku": "USD-1", "name": "Dollar thing", "price_cents": 100, "currency": "USD", "stock": 5})).await;
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let hidden = shop.item(&admin, &cat, "GONE-1", 100, 5).await;
    shop.send(
        Method::DELETE,
        &format!("/v1/items/{hidden}"),
        &admin,
        json!(null),
    )
    .await;
    let ann = shop.customer("ann@example.com").await;
    let unknown = uuid::Uuid::new_v4();
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"item_id": uuid::Uuid::new_v4(), "quantity": 1}))
        .collect();
    let cases = vec![
        (json!([]), vec!["lines"]),
        (json!(too_many), vec!["lines"]),
        (
            json!([{"item_id": a, "quantity": 0}]),
            vec!["lines[0].quantity"],
        ),
        (
            json!([{"item_id": a, "quantity": 1001}]),
            vec!["lines[0].quantity"],
        ),
        (
            json!([{"item_id": a, "quantity": -1}]),
            vec!["lines[0].quantity"],
        ),
        (
            json!([{"item_id": a, "quantity": 1.5}]),
            vec!["lines[0].quantity"],
        ),
        (
            json!([{"item_id": a, "quantity": "2"}]),
            vec!["lines[0].quantity"],
        ),
        (
            json!([{"item_id": "not-a-uuid", "quantity": 1}]),
            vec!["lines[0].item_id"],
        ),
        (
            json!([{"item_id": a, "quantity": 1}, {"item_id": a, "quantity": 1}]),
            vec!["lines[1].item_id"],
        ),
        (
            json!([{"item_id": unknown, "quantity": 1}]),
            vec!["lines[0].item_id"],
        ),
        (
            json!([{"item_id": hidden, "quantity": 1}]),
            vec!["lines[0].item_id"],
        ),
        (
            json!([{"item_id": a, "quantity": 1}, {"item_id": usd, "quantity": 1}]),
            vec!["lines[1].item_id"],
        ),
    ];
    for (lines, expected) in cases {
        let r = order(&shop, &ann, lines.clone(), None).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&p), expected, "{lines}");
    }
    let r = shop
        .client
        .post(shop.url("/v1/orders"))
        .bearer_auth(&ann)
        .header("content-type", "application/json")
        .body("{\"lines\": [")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = shop
        .client
        .post(shop.url("/v1/orders"))
        .json(&json!({"lines": [{"item_id": a, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(shop.count("orders").await, 0);
    assert_eq!(shop.stock(&a).await, 5);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 250, 10).await;
    let ann = shop.customer("ann@example.com").await;
    let lines = json!([{"item_id": a, "quantity": 2}]);

    let first = order(&shop, &ann, lines.clone(), Some("key-1")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = order(&shop, &ann, lines.clone(), Some("key-1")).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(
        shop.stock(&a).await,
        8,
        "the replay must not take stock again"
    );

    // Same key, another body: 422, nothing happens.
    let other = order(
        &shop,
        &ann,
        json!([{"item_id": a, "quantity": 3}]),
        Some("key-1"),
    )
    .await;
    problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Keys are per user: another customer's "key-1" is a new order.
    let bob = shop.customer("bob@example.com").await;
    assert_eq!(
        order(&shop, &bob, lines.clone(), Some("key-1"))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(shop.count("orders").await, 2);
    for bad in ["", &"k".repeat(256), "has space"] {
        let r = shop
            .client
            .post(shop.url("/v1/orders"))
            .bearer_auth(&ann)
            .header("idempotency-key", bad)
            .json(&json!({"lines": lines}))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn an_idempotency_key_expires_after_a_day() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 250, 10).await;
    let ann = shop.customer("ann@example.com").await;
    assert_eq!(
        order(
            &shop,
            &ann,
            json!([{"item_id": a, "quantity": 1}]),
            Some("daily")
        )
        .await
        .status(),
        201
    );
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&shop.db.pool().await)
        .await
        .unwrap();
    // A day later the key is free again, even for another body.
    let r = order(
        &shop,
        &ann,
        json!([{"item_id": a, "quantity": 2}]),
        Some("daily"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("idempotent-replayed").is_none());
    assert_eq!(shop.count("orders").await, 2);
    assert_eq!(shop.count("idempotency_keys").await, 1);
}

#[tokio::test]
async fn an_oversized_order_body_is_413_and_writes_nothing() {
    let shop = Shop::spawn().await;
    let ann = shop.customer("ann@example.com").await;
    let lines: Vec<Value> = (0..30_000)
        .map(|_| json!({"item_id": uuid::Uuid::new_v4(), "quantity": 1}))
        .collect();
    let r = shop
        .client
        .post(shop.url("/v1/orders"))
        .bearer_auth(&ann)
        .json(&json!({"lines": lines}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(shop.count("orders").await, 0);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_order() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 250, 100).await;
    let ann = shop.customer("ann@example.com").await;
    let lines = json!([{"item_id": a, "quantity": 1}]);
    let attempts = (0..10).map(|_| order(&shop, &ann, lines.clone(), Some("race")));
    let responses = futures_util::future::join_all(attempts).await;
    let mut ids = Vec::new();
    for r in responses {
        assert_eq!(r.status(), StatusCode::CREATED);
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(shop.count("orders").await, 1);
    assert_eq!(shop.stock(&a).await, 99);
}

#[tokio::test]
async fn orders_move_through_their_states_and_cancelling_restocks() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 10).await;
    let ann = shop.customer("ann@example.com").await;
    let place = || order(&shop, &ann, json!([{"item_id": a, "quantity": 4}]), None);
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    // Customer cancels a pending order: stock comes back.
    let o: Value = place().await.json().await.unwrap();
    assert_eq!(shop.stock(&a).await, 6);
    let r = shop
        .post(&format!("/v1/orders/{}/cancel", id(&o)), &ann, json!(null))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(shop.stock(&a).await, 10);
    problem(
        shop.post(&format!("/v1/orders/{}/cancel", id(&o)), &ann, json!(null))
            .await,
        StatusCode::CONFLICT,
    )
    .await;

    // pending → paid → shipped; nothing after shipped.
    let o: Value = place().await.json().await.unwrap();
    let status = |s: &'static str| json!({"status": s});
    let path = format!("/v1/orders/{}/status", id(&o));
    problem(
        shop.post(&path, &ann, status("paid")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(shop.post(&path, &admin, status("paid")).await.status(), 200);
    assert_eq!(
        shop.post(&path, &admin, status("shipped")).await.status(),
        200
    );
    // Once shipped, the customer can no longer cancel.
    problem(
        shop.post(&format!("/v1/orders/{}/cancel", id(&o)), &ann, json!(null))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    for next in ["pending", "paid", "cancelled", "shipped"] {
        problem(
            shop.post(&path, &admin, status(next)).await,
            StatusCode::CONFLICT,
        )
        .await;
    }
    let p = problem(
        shop.post(&path, &admin, json!({"status": "lost"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&p), ["status"]);
    assert_eq!(shop.stock(&a).await, 6);

    // An admin may cancel a paid order; it restocks too.
    let o: Value = place().await.json().await.unwrap();
    shop.post(
        &format!("/v1/orders/{}/status", id(&o)),
        &admin,
        status("paid"),
    )
    .await;
    let r = shop
        .post(
            &format!("/v1/orders/{}/cancel", id(&o)),
            &admin,
            json!(null),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(shop.stock(&a).await, 6);
}

#[tokio::test]
async fn customers_see_only_their_own_orders() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 50).await;
    let ann = shop.customer("ann@example.com").await;
    let bob = shop.customer("bob@example.com").await;
    let anns: Value = order(&shop, &ann, json!([{"item_id": a, "quantity": 1}]), None)
        .await
        .json()
        .await
        .unwrap();
    order(&shop, &bob, json!([{"item_id": a, "quantity": 1}]), None).await;
    let anns_id = anns["id"].as_str().unwrap();

    problem(
        shop.get(&format!("/v1/orders/{anns_id}"), Some(&bob)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        shop.post(&format!("/v1/orders/{anns_id}/cancel"), &bob, json!(null))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let got: Value = shop
        .get(&format!("/v1/orders/{anns_id}"), Some(&ann))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["lines"][0]["quantity"], 1);
    assert_eq!(
        shop.get(&format!("/v1/orders/{anns_id}"), Some(&admin))
            .await
            .status(),
        200
    );

    let mine: Value = shop
        .get("/v1/orders", Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_ne!(mine["items"][0]["id"], anns["id"]);
    let customer = anns["customer_id"].as_str().unwrap();
    problem(
        shop.get(&format!("/v1/orders?customer_id={customer}"), Some(&bob))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let all: Value = shop
        .get("/v1/orders", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let filtered: Value = shop
        .get(
            &format!("/v1/orders?customer_id={customer}&status=pending"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    for bad in [
        "/v1/orders/not-a-uuid",
        "/v1/orders?status=lost",
        "/v1/orders?limit=0",
        "/v1/orders?created_from=yesterday",
    ] {
        let r = shop.get(bad, Some(&admin)).await;
        assert!(r.status() == 400, "{bad}: {}", r.status());
    }
    problem(
        shop.get(
            &format!("/v1/orders/{}", uuid::Uuid::new_v4()),
            Some(&admin),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_page_of_orders_reads_its_lines_in_one_query_whatever_its_size() {
    let (shop, counter) = Shop::spawn_counting_statements().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 500).await;
    let b = shop.item(&admin, &cat, "B-1", 100, 500).await;
    let ann = shop.customer("ann@example.com").await;
    for _ in 0..30 {
        order(
            &shop,
            &ann,
            json!([{"item_id": a, "quantity": 1}, {"item_id": b, "quantity": 1}]),
            None,
        )
        .await;
    }
    // Statements touching orders; the outbox relay's own (on `jobs`) do not count.
    let executed = || {
        counter.executed(|sql| {
            sql.contains("orders") || sql.contains("order_lines") || sql.contains("payments")
        })
    };
    let mut per_request = Vec::new();
    for limit in [1, 10, 30] {
        let before = executed();
        let page: Value = shop
            .get(&format!("/v1/orders?limit={limit}"), Some(&ann))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), limit);
        assert_eq!(page["items"][0]["lines"].as_array().unwrap().len(), 2);
        per_request.push(executed() - before);
    }
    // The page of orders, then all their lines, then their latest payments; a pooled-connection
    // check may add one.
    assert!(
        per_request.iter().all(|n| (3..=4).contains(n)),
        "{per_request:?}"
    );
    assert_eq!(
        per_request[0], per_request[2],
        "statements grew with the page size: {per_request:?}"
    );
    let one = shop
        .get("/v1/orders?limit=1", Some(&ann))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = one["items"][0]["id"].as_str().unwrap().to_owned();
    let before = executed();
    assert_eq!(
        shop.get(&format!("/v1/orders/{id}"), Some(&ann))
            .await
            .status(),
        200
    );
    assert_eq!(executed() - before, 3);
}

#[tokio::test]
async fn with_verified_addresses_required_an_unverified_account_cannot_order() {
    let shop = Shop::spawn_with(|s| s.orders_require_verified_email = true).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let a = shop.item(&admin, &cat, "A-1", 100, 10).await;
    let ann = shop.customer("ann@example.com").await;
    let lines = json!([{"item_id": a, "quantity": 1}]);
    let p = problem(
        order(&shop, &ann, lines.clone(), None).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("verify"), "{p}");
    assert_eq!(shop.count("orders").await, 0);
    assert_eq!(shop.stock(&a).await, 10);
    // Verified (as following the e-mail's link does), the next token says so and the order goes.
    sqlx::query("UPDATE users SET email_verified_at = now() WHERE email = 'ann@example.com'")
        .execute(&shop.auth_db.pool().await)
        .await
        .unwrap();
    let verified = shop.login("ann@example.com").await;
    assert_eq!(order(&shop, &verified, lines, None).await.status(), 201);
}
