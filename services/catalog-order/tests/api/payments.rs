//! Payments through the real webhook path: the `fake` provider delivers signed webhooks over
//! HTTP to the service, and hostile ones are sent by hand (docs/design.md, "Payments").

use std::time::Duration;

use catalog_order::payments::signature;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::eventually;
use time::OffsetDateTime;

use crate::support::{Shop, WEBHOOK_SECRET, problem};

/// A shop with one item (price 250, stock 10), an admin and a customer.
struct Fixture {
    shop: Shop,
    admin: String,
    ann: String,
    item: String,
}

async fn fixture_with(tweak: impl FnOnce(&mut catalog_order::settings::Settings)) -> Fixture {
    let shop = Shop::spawn_with(tweak).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "A-1", 250, 10).await;
    let ann = shop.customer("ann@example.com").await;
    Fixture {
        shop,
        admin,
        ann,
        item,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// A shop whose fake provider holds `delay` payments for a minute: the tests send the events.
async fn quiet_fixture() -> Fixture {
    fixture_with(|s| s.payments.payment_fake_delay = Duration::from_secs(600)).await
}

impl Fixture {
    /// A pending order of two of the item (500 EUR cents); its id.
    async fn order(&self) -> String {
        let r = self
            .shop
            .post(
                "/v1/orders",
                &self.ann,
                json!({"lines": [{"item_id": self.item, "quantity": 2}]}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn pay(&self, order: &str, outcome: &str) -> reqwest::Response {
        self.shop
            .post(
                &format!("/v1/orders/{order}/payment"),
                &self.ann,
                json!({"test_outcome": outcome}),
            )
            .await
    }

    /// Pay with `outcome`, which must open a payment (201); the payment.
    async fn opened(&self, order: &str, outcome: &str) -> Value {
        let r = self.pay(order, outcome).await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    async fn order_json(&self, order: &str) -> Value {
        self.shop
            .get(&format!("/v1/orders/{order}"), Some(&self.ann))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Wait until the order shows `status` with its payment `payment_status`.
    async fn until(&self, order: &str, status: &str, payment_status: &str) -> Value {
        let reached = eventually(Duration::from_secs(15), || async {
            let o = self.order_json(order).await;
            o["status"] == status && o["payment"]["status"] == payment_status
        })
        .await;
        let last = self.order_json(order).await;
        assert!(reached, "wanted {status}/{payment_status}, last {last}");
        last
    }

    /// Jobs of `kind` written so far, with their payloads.
    async fn jobs_of(&self, kind: &str) -> Vec<Value> {
        sqlx::query_scalar("SELECT payload FROM jobs WHERE kind = $1 ORDER BY created_at")
            .bind(kind)
            .fetch_all(&self.shop.db.pool().await)
            .await
            .unwrap()
    }

    async fn payment_status(&self, payment: &str) -> String {
        sqlx::query_scalar("SELECT status FROM payments WHERE id = $1::uuid")
            .bind(payment)
            .fetch_one(&self.shop.db.pool().await)
            .await
            .unwrap()
    }
}

/// An event about `payment` (as opened) of `kind` with id `id`.
fn event(id: &str, kind: &str, payment: &Value) -> Value {
    json!({"id": id, "type": kind, "created": OffsetDateTime::now_utc().unix_timestamp(),
           "data": {"payment_id": payment["id"], "order_id": payment["order_id"],
                    "amount_cents": payment["amount_cents"], "currency": payment["currency"]}})
}

/// POST `body` to `base`'s webhook with `signature` as the header (none when `None`).
async fn send_raw(base: &str, body: &[u8], signature: Option<String>) -> reqwest::Response {
    let mut req = testkit::http_client()
        .post(format!("{base}/v1/payments/webhook"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("Payment-Signature", s);
    }
    req.send().await.unwrap()
}

/// POST `event` signed with `secret` now.
async fn deliver(base: &str, secret: &str, event: &Value) -> reqwest::Response {
    let body = serde_json::to_vec(event).unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    send_raw(base, &body, Some(signature::sign(secret, now, &body))).await
}

/// `payments_total{outcome}` of the first replica.
async fn payments_total(shop: &Shop, outcome: &str) -> f64 {
    shop.metric(&format!(
        r#"payments_total{{outcome="{outcome}",service="catalog-order"}}"#
    ))
    .await
}

#[tokio::test]
async fn a_payment_with_the_fake_provider_pays_the_order_through_its_signed_webhook() {
    let f = fixture().await;
    let order = f.order().await;
    let payment = f.opened(&order, "succeed").await;
    assert_eq!(payment["status"], "processing", "{payment}");
    assert_eq!(payment["amount_cents"], 500);
    assert_eq!(payment["currency"], "EUR");
    assert_eq!(payment["provider"], "fake");
    assert_eq!(payment["order_id"], order.as_str());
    assert!(payment["client_secret"].as_str().unwrap().len() > 10);

    let paid = f.until(&order, "paid", "succeeded").await;
    assert_eq!(paid["payment"]["id"], payment["id"]);
    // Stock stays taken; the order can no longer be paid.
    assert_eq!(f.shop.stock(&f.item).await, 8);
    problem(f.pay(&order, "succeed").await, StatusCode::CONFLICT).await;
    assert_eq!(f.shop.count("payment_events").await, 1);
    // The receipt e-mail was written with the payment's effect, to the payer's address.
    let receipts = f.jobs_of("email.payment_receipt").await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["email"], "ann@example.com");
    assert_eq!(receipts[0]["payment_id"], payment["id"]);
    assert_eq!(receipts[0]["amount_cents"], 500);
    assert_eq!(payments_total(&f.shop, "succeeded").await, 1.0);
}

#[tokio::test]
async fn a_failed_payment_leaves_the_order_pending_and_it_can_be_paid_again() {
    let f = fixture().await;
    let order = f.order().await;
    let failed = f.opened(&order, "fail").await;
    f.until(&order, "pending", "failed").await;
    // An empty body is a default payment (the fake's default outcome: succeed).
    let r = f
        .shop
        .client
        .post(f.shop.url(&format!("/v1/orders/{order}/payment")))
        .bearer_auth(&f.ann)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["id"], failed["id"]);
    let paid = f.until(&order, "paid", "succeeded").await;
    assert_eq!(paid["payment"]["id"], second["id"]);
    assert_eq!(
        f.payment_status(failed["id"].as_str().unwrap()).await,
        "failed"
    );
    assert_eq!(payments_total(&f.shop, "failed").await, 1.0);
}

#[tokio::test]
async fn while_a_payment_processes_every_request_answers_it_and_a_key_replays() {
    let f = fixture().await;
    let order = f.order().await;
    // Ten requests at once, two of them with the same key: one payment.
    let requests = (0..10).map(|i| {
        let mut req = f
            .shop
            .client
            .post(f.shop.url(&format!("/v1/orders/{order}/payment")))
            .bearer_auth(&f.ann)
            .json(&json!({"test_outcome": "delay"}));
        if i < 2 {
            req = req.header("Idempotency-Key", "pay-once");
        }
        req.send()
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for r in answers {
        let r = r.unwrap();
        match r.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
        ids.push(r.json::<Value>().await.unwrap()["id"].clone());
    }
    assert_eq!(created, 1, "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(f.shop.count("payments").await, 1);
    // Seen processing meanwhile, then paid once the delayed webhook arrives.
    assert_eq!(
        f.order_json(&order).await["payment"]["status"],
        "processing"
    );
    f.until(&order, "paid", "succeeded").await;
}

#[tokio::test]
async fn bad_payment_requests_are_refused_and_open_nothing() {
    let f = fixture().await;
    let order = f.order().await;
    let path = format!("/v1/orders/{order}/payment");
    let bob = f.shop.customer("bob@example.com").await;
    // Someone else's order does not exist for them; neither does an unknown one.
    problem(
        f.shop.post(&path, &bob, json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        f.shop
            .post(
                &format!("/v1/orders/{}/payment", uuid::Uuid::now_v7()),
                &f.ann,
                json!({}),
            )
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for body in [
        json!({"test_outcome": "explode"}),
        json!({"amount_cents": 1}),
        json!([]),
    ] {
        problem(
            f.shop.post(&path, &f.ann, body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let r = f
        .shop
        .client
        .post(f.shop.url(&path))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    // A cancelled order cannot be paid.
    f.shop
        .post(&format!("/v1/orders/{order}/cancel"), &f.ann, json!(null))
        .await;
    problem(f.pay(&order, "succeed").await, StatusCode::CONFLICT).await;
    assert_eq!(f.shop.count("payments").await, 0);
}

#[tokio::test]
async fn forged_stale_and_malformed_webhooks_are_400_and_change_nothing() {
    let f = quiet_fixture().await;
    let order = f.order().await;
    let payment = f.opened(&order, "delay").await;
    let base = &f.shop.base;
    let good = event("evt_good", "payment.succeeded", &payment);
    let body = serde_json::to_vec(&good).unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();

    let mut refused = vec![
        ("no signature", send_raw(base, &body, None).await),
        (
            "another secret",
            send_raw(base, &body, Some(signature::sign("not-ours", now, &body))).await,
        ),
        (
            "stale",
            send_raw(
                base,
                &body,
                Some(signature::sign(WEBHOOK_SECRET, now - 360, &body)),
            )
            .await,
        ),
        (
            "from the future",
            send_raw(
                base,
                &body,
                Some(signature::sign(WEBHOOK_SECRET, now + 360, &body)),
            )
            .await,
        ),
        (
            "garbage header",
            send_raw(base, &body, Some("t=soon,v1=xyz".into())).await,
        ),
    ];
    // The body changed after signing.
    let signed = signature::sign(WEBHOOK_SECRET, now, &body);
    let mut tampered = good.clone();
    tampered["data"]["amount_cents"] = json!(1);
    refused.push((
        "tampered",
        send_raw(base, &serde_json::to_vec(&tampered).unwrap(), Some(signed)).await,
    ));
    // Correctly signed, but not a valid event.
    for (what, bad) in [
        ("not JSON", json!("{")),
        (
            "unknown type",
            event("evt_x", "payment.teleported", &payment),
        ),
        (
            "missing data",
            json!({"id": "evt_y", "type": "payment.succeeded", "created": now}),
        ),
        ("extra field", {
            let mut e = good.clone();
            e["data"]["extra"] = json!(1);
            e
        }),
        (
            "unknown payment",
            event(
                "evt_z",
                "payment.succeeded",
                &json!({"id": uuid::Uuid::now_v7(), "order_id": order, "amount_cents": 500, "currency": "EUR"}),
            ),
        ),
        ("wrong amount", {
            let mut e = good.clone();
            e["data"]["amount_cents"] = json!(499);
            e
        }),
        ("wrong order", {
            let mut e = good.clone();
            e["data"]["order_id"] = json!(uuid::Uuid::now_v7());
            e
        }),
        ("wrong currency", {
            let mut e = good.clone();
            e["data"]["currency"] = json!("USD");
            e
        }),
    ] {
        let body = match &bad {
            Value::String(raw) => raw.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap(),
        };
        let header = signature::sign(WEBHOOK_SECRET, now, &body);
        refused.push((what, send_raw(base, &body, Some(header)).await));
    }
    for (what, r) in refused {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        let p: Value = r.json().await.unwrap();
        assert!(p["detail"].is_string(), "{what}: {p}");
    }
    // Nothing changed, nothing was remembered; the signature failures were counted.
    assert_eq!(
        f.payment_status(payment["id"].as_str().unwrap()).await,
        "processing"
    );
    assert_eq!(f.order_json(&order).await["status"], "pending");
    assert_eq!(f.shop.count("payment_events").await, 0);
    assert!(f.jobs_of("email.payment_receipt").await.is_empty());
    assert_eq!(
        f.shop
            .metric(r#"payment_webhook_signature_failures_total{service="catalog-order"}"#)
            .await,
        6.0
    );
    // The genuine event still works afterwards.
    assert_eq!(deliver(base, WEBHOOK_SECRET, &good).await.status(), 200);
    f.until(&order, "paid", "succeeded").await;
}

#[tokio::test]
async fn an_event_is_applied_once_however_often_and_in_whatever_order_it_arrives() {
    let f = quiet_fixture().await;
    let order = f.order().await;
    let payment = f.opened(&order, "delay").await;
    let base = &f.shop.base;
    let answer = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["result"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // `failed` arrives first, then `succeeded`: the money was taken, succeeded wins.
    let failed = event("evt_failed", "payment.failed", &payment);
    let succeeded = event("evt_succeeded", "payment.succeeded", &payment);
    assert_eq!(
        answer(deliver(base, WEBHOOK_SECRET, &failed).await).await,
        "applied"
    );
    assert_eq!(
        answer(deliver(base, WEBHOOK_SECRET, &succeeded).await).await,
        "applied"
    );
    // Redelivered, at once and later: applied once.
    let again =
        futures_util::future::join_all((0..8).map(|_| deliver(base, WEBHOOK_SECRET, &succeeded)))
            .await;
    for r in again {
        assert_eq!(answer(r).await, "duplicate");
    }
    assert_eq!(
        answer(deliver(base, WEBHOOK_SECRET, &failed).await).await,
        "duplicate"
    );
    // A new `failed` event after success is late: nothing changes.
    let late = event("evt_late", "payment.failed", &payment);
    assert_eq!(
        answer(deliver(base, WEBHOOK_SECRET, &late).await).await,
        "late"
    );
    let o = f.order_json(&order).await;
    assert_eq!(o["status"], "paid");
    assert_eq!(o["payment"]["status"], "succeeded");
    assert_eq!(f.shop.count("payment_events").await, 3);
    assert_eq!(payments_total(&f.shop, "succeeded").await, 1.0);
}

#[tokio::test]
async fn every_configured_webhook_secret_is_accepted_during_a_rotation() {
    let f = fixture_with(|s| {
        s.payments.payment_fake_delay = Duration::from_secs(600);
        s.payments.payment_webhook_secrets = Some(platform::config::Secret::new(format!(
            "{WEBHOOK_SECRET}, the-new-secret-0123456789abcdefghij"
        )));
    })
    .await;
    let base = &f.shop.base;
    let first = f.order().await;
    let p1 = f.opened(&first, "delay").await;
    let r = deliver(
        base,
        "the-new-secret-0123456789abcdefghij",
        &event("evt_1", "payment.succeeded", &p1),
    )
    .await;
    assert_eq!(r.status(), 200);
    let second = f.order().await;
    let p2 = f.opened(&second, "delay").await;
    let r = deliver(
        base,
        WEBHOOK_SECRET,
        &event("evt_2", "payment.succeeded", &p2),
    )
    .await;
    assert_eq!(r.status(), 200);
    let third = f.order().await;
    let p3 = f.opened(&third, "delay").await;
    let r = deliver(
        base,
        "a-retired-secret-0123456789abcdefghij",
        &event("evt_3", "payment.succeeded", &p3),
    )
    .await;
    assert_eq!(r.status(), 400);
    f.until(&first, "paid", "succeeded").await;
    f.until(&second, "paid", "succeeded").await;
    assert_eq!(f.order_json(&third).await["status"], "pending");
}

#[tokio::test]
async fn cancelling_a_paid_order_restocks_it_and_refunds_the_payment() {
    let f = fixture().await;
    let order = f.order().await;
    f.opened(&order, "succeed").await;
    f.until(&order, "paid", "succeeded").await;
    assert_eq!(f.shop.stock(&f.item).await, 8);
    let r = f
        .shop
        .post(&format!("/v1/orders/{order}/cancel"), &f.ann, json!(null))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(f.shop.stock(&f.item).await, 10);
    // The refund job asks the provider; its `refund.succeeded` webhook marks the payment.
    f.until(&order, "cancelled", "refunded").await;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'payment.refund'")
        .fetch_one(&f.shop.db.pool().await)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    let refunds = f.jobs_of("email.refund").await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["email"], "ann@example.com");
    assert_eq!(payments_total(&f.shop, "refunded").await, 1.0);
}

#[tokio::test]
async fn money_arriving_for_an_order_cancelled_meanwhile_is_refunded() {
    let f = fixture().await;
    let order = f.order().await;
    // The payment succeeds after the fake's delay (2 s in tests); the admin cancels first.
    f.opened(&order, "delay").await;
    let r = f
        .shop
        .post(&format!("/v1/orders/{order}/cancel"), &f.admin, json!(null))
        .await;
    assert_eq!(r.status(), 200);
    f.until(&order, "cancelled", "refunded").await;
    assert_eq!(f.shop.stock(&f.item).await, 10);
    // No receipt for an order it did not pay; the refund is told.
    assert!(f.jobs_of("email.payment_receipt").await.is_empty());
    assert_eq!(f.jobs_of("email.refund").await.len(), 1);
}

#[tokio::test]
async fn an_open_payment_keeps_its_order_from_expiring_for_another_window() {
    let f = quiet_fixture().await;
    let db = f.shop.db.pool().await;
    let order = f.order().await;
    let unpaid = f.order().await;
    let payment = f.opened(&order, "delay").await;
    sqlx::query("UPDATE orders SET created_at = now() - interval '1 hour'")
        .execute(&db)
        .await
        .unwrap();
    let timeout = Duration::from_secs(30 * 60);
    let (n, _) = catalog_order::store::orders::expire_unpaid(&db, timeout)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(f.order_json(&unpaid).await["status"], "cancelled");
    assert_eq!(f.order_json(&order).await["status"], "pending");
    // A payment left processing past the window no longer holds the order.
    sqlx::query("UPDATE payments SET created_at = now() - interval '31 minutes'")
        .execute(&db)
        .await
        .unwrap();
    let (n, _) = catalog_order::store::orders::expire_unpaid(&db, timeout)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(f.order_json(&order).await["status"], "cancelled");
    // Its success, should it still come, is refunded.
    let r = deliver(
        &f.shop.base,
        WEBHOOK_SECRET,
        &event("evt_late_money", "payment.succeeded", &payment),
    )
    .await;
    assert_eq!(r.status(), 200);
    f.until(&order, "cancelled", "refunded").await;
}

#[tokio::test]
async fn a_payment_opened_on_one_replica_is_settled_by_the_webhook_on_another() {
    let mut f = fixture().await;
    // The second replica's provider delivers its webhooks to the first replica, as a provider
    // reaching the Service behind a load balancer lands on any replica.
    let first = f.shop.base.clone();
    let second = f
        .shop
        .add_replica_with(|s| {
            s.payments.payment_fake_webhook_url = Some(format!("{first}/v1/payments/webhook"));
        })
        .await;
    let order = f.order().await;
    let r = f
        .shop
        .client
        .post(format!("{second}/v1/orders/{order}/payment"))
        .bearer_auth(&f.ann)
        .json(&json!({"test_outcome": "succeed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    f.until(&order, "paid", "succeeded").await;
    // Both replicas agree, and the first one applied it.
    let seen: Value = f
        .shop
        .client
        .get(format!("{second}/v1/orders/{order}"))
        .bearer_auth(&f.ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["status"], "paid");
    assert_eq!(payments_total(&f.shop, "succeeded").await, 1.0);
}
