//! Personal data across auth and catalog-order (docs/design.md §4): a customer exports what is
//! stored about them and deletes their account; auth revokes every session and announces the
//! deletion, and catalog-order keeps the orders' amounts and lines but forgets the person.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Deps, PASSWORD, Stack, admin_and_customer, created, login, mug_for_sale};
use testkit::eventually;

/// What a customer fills in on their profile.
fn profile() -> Value {
    json!({"full_name": "Ann Example", "phone": "+49 30 1234", "address_line": "1 Main Street",
           "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

async fn me(client: &reqwest::Client, stack: &Stack, token: &str) -> reqwest::Response {
    client
        .get(format!("{}/v1/auth/me", stack.auth.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn export(client: &reqwest::Client, stack: &Stack, token: &str) -> reqwest::Response {
    client
        .get(stack.api("/v1/customers/me/export"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The customer puts in a profile and orders `quantity` mugs; returns the order.
async fn profile_and_order(
    client: &reqwest::Client,
    stack: &Stack,
    token: &str,
    item: &Value,
    quantity: u32,
) -> Value {
    let put = client
        .put(stack.api("/v1/customers/me"))
        .bearer_auth(token)
        .json(&profile())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    created(
        client
            .post(stack.api("/v1/orders"))
            .bearer_auth(token)
            .json(&json!({"lines": [{"item_id": item["id"], "quantity": quantity}]}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Waits until catalog-order has anonymised `customer`, then checks that nothing personal is
/// left in its database while the order's amounts and lines are.
async fn assert_forgotten(deps: &Deps, customer: &str, order: &Value) {
    let db = deps.catalog_db.pool().await;
    let anonymised = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT anonymised_at IS NOT NULL FROM customers WHERE id = $1::uuid",
        )
        .bind(customer)
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(10), anonymised).await,
        "catalog-order never anonymised the customer"
    );
    let (name, phone, address, city, postal, country): (
        String,
        String,
        String,
        String,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT full_name, phone, address_line, city, postal_code, country
             FROM customers WHERE id = $1::uuid",
    )
    .bind(customer)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        [name, phone, address, city, postal, country].concat(),
        "",
        "the profile still holds personal data"
    );
    let payment_emails: Vec<String> = sqlx::query_scalar(
        "SELECT email FROM payments WHERE order_id IN (SELECT id FROM orders WHERE customer_id = $1::uuid)",
    )
    .bind(customer)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        payment_emails.iter().all(String::is_empty),
        "payments still hold the address: {payment_emails:?}"
    );
    let payloads: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM jobs WHERE owner_id = $1::uuid OR payload->>'customer_id' = $1",
    )
    .bind(customer)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        !payloads.is_empty(),
        "the order confirmation job is missing"
    );
    for payload in &payloads {
        assert!(payload.get("email").is_none(), "{payload}");
        assert!(!payload.to_string().contains("@example.com"), "{payload}");
    }
    let confirmation = payloads
        .iter()
        .find(|p| p["order_id"] == order["id"])
        .expect("the order's confirmation job");
    assert_eq!(confirmation["total_cents"], 1800);
    assert_eq!(confirmation["lines"][0]["quantity"], 2);
    let (total, lines): (i64, i64) = sqlx::query_as(
        "SELECT o.total_cents, (SELECT sum(quantity) FROM order_lines WHERE order_id = o.id)
         FROM orders o WHERE o.id = $1::uuid",
    )
    .bind(order["id"].as_str().unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (total, lines),
        (1800, 2),
        "the order lost its amounts or lines"
    );
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE user_id = $1::uuid")
            .bind(customer)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(keys, 0);
}

/// The account's tokens are refused by auth and by catalog-order (every verifier), and the
/// password no longer logs in.
async fn assert_locked_out(
    client: &reqwest::Client,
    stack: &Stack,
    email: &str,
    access: &str,
    refresh: Option<&str>,
) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            export(client, stack, access).await.status() == 401
        })
        .await,
        "catalog-order still accepts the deleted account's token"
    );
    assert_eq!(me(client, stack, access).await.status(), 401);
    if let Some(refresh) = refresh {
        let refreshed = client
            .post(format!("{}/v1/auth/refresh", stack.auth.base))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_eq!(refreshed.status(), 401);
    }
    let login = client
        .post(format!("{}/v1/auth/login", stack.auth.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
}

#[tokio::test]
async fn a_customer_exports_their_data_and_deleting_the_account_forgets_them_everywhere() {
    let deps = Deps::new().await;
    let stack = Stack::start(&deps, |_, _| {}).await;
    let (admin, _) = admin_and_customer(&deps, &stack.auth).await;
    let client = testkit::http_client();
    // A login of our own, for its refresh token.
    let pair: Value = client
        .post(format!("{}/v1/auth/login", stack.auth.base))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ann = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let item = mug_for_sale(&client, &stack, &admin).await;
    let order = profile_and_order(&client, &stack, &ann, &item, 2).await;
    // Paid with the fake provider (its webhook marks the order paid).
    let order_url = stack.api(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let paying = client
        .post(format!("{order_url}/payment"))
        .bearer_auth(&ann)
        .json(&json!({"test_outcome": "succeed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paying.status(), 201);
    let status = || async {
        client
            .get(&order_url)
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["status"]
            .clone()
    };
    assert!(
        eventually(Duration::from_secs(15), || async {
            status().await == "paid"
        })
        .await,
        "the order was never paid"
    );

    // The export holds the profile, the order with its lines, its payment and the e-mail jobs.
    let response = export(&client, &stack, &ann).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    let data: Value = response.json().await.unwrap();
    let ann_id = data["account"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["account"]["email"], "ann@example.com");
    assert_eq!(data["customer"]["full_name"], "Ann Example");
    assert_eq!(data["customer"]["address_line"], "1 Main Street");
    assert_eq!(data["orders"][0]["id"], order["id"]);
    assert_eq!(data["orders"][0]["total_cents"], 1800);
    assert_eq!(data["orders"][0]["lines"][0]["quantity"], 2);
    assert_eq!(data["payments"][0]["order_id"], order["id"]);
    assert_eq!(data["payments"][0]["status"], "succeeded");
    assert_eq!(data["payments"][0]["email"], "ann@example.com");
    let jobs = data["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["kind"] == "email.order_confirmation"
            && j["payload"]["email"] == "ann@example.com"
            && j["payload"]["order_id"] == order["id"]),
        "{data}"
    );

    // A wrong password changes nothing.
    let refused = client
        .delete(format!("{}/v1/auth/me", stack.auth.base))
        .bearer_auth(&ann)
        .json(&json!({"password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(me(&client, &stack, &ann).await.status(), 200);
    let still: Value = export(&client, &stack, &ann).await.json().await.unwrap();
    assert_eq!(still["customer"]["full_name"], "Ann Example");

    // The right password deletes the account.
    let deleted = client
        .delete(format!("{}/v1/auth/me", stack.auth.base))
        .bearer_auth(&ann)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_locked_out(&client, &stack, "ann@example.com", &ann, Some(&refresh)).await;
    assert_forgotten(&deps, &ann_id, &order).await;

    // The admin still sees the order, amounts and lines intact.
    let kept: Value = client
        .get(stack.api(&format!("/v1/orders/{}", order["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["total_cents"], 1800);
    assert_eq!(kept["lines"][0]["quantity"], 2);
    assert_eq!(kept["lines"][0]["name"], "Mug");

    // Auth keeps nothing about the account; its event was published once and applied once.
    let auth_db = deps.auth_db.pool().await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1::uuid")
        .bind(&ann_id)
        .fetch_one(&auth_db)
        .await
        .unwrap();
    assert_eq!(users, 0);
    let event_id: String = sqlx::query_scalar(
        "SELECT id::text FROM event_outbox WHERE kind = 'account.deleted' AND published_at IS NOT NULL",
    )
    .fetch_one(&auth_db)
    .await
    .unwrap();
    let inbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_event_inbox WHERE event_id = $1::uuid")
            .bind(&event_id)
            .fetch_one(&deps.catalog_db.pool().await)
            .await
            .unwrap();
    assert_eq!(inbox, 1);
}

#[tokio::test]
async fn an_admin_deletes_another_user_and_a_customer_cannot() {
    let deps = Deps::new().await;
    let stack = Stack::start(&deps, |_, _| {}).await;
    let (admin, ann) = admin_and_customer(&deps, &stack.auth).await;
    let client = testkit::http_client();
    let bob_id = created(
        client
            .post(format!("{}/v1/auth/register", stack.auth.base))
            .json(&json!({"email": "bob@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = login(&client, &stack.auth, "bob@example.com").await;
    let item = mug_for_sale(&client, &stack, &admin).await;
    let order = profile_and_order(&client, &stack, &bob, &item, 2).await;
    let _ = profile_and_order(&client, &stack, &ann, &item, 1).await;
    let delete_user = |token: &str, id: &str| {
        client
            .delete(format!("{}/v1/auth/users/{id}", stack.auth.base))
            .bearer_auth(token)
            .send()
    };

    // A customer cannot delete someone else.
    assert_eq!(delete_user(&ann, &bob_id).await.unwrap().status(), 403);
    assert_eq!(me(&client, &stack, &bob).await.status(), 200);
    // Unknown users are 404; admins delete themselves only through /v1/auth/me.
    let unknown = "0190d5e2-0000-7000-8000-000000000000";
    assert_eq!(delete_user(&admin, unknown).await.unwrap().status(), 404);
    let admin_id: Value = me(&client, &stack, &admin).await.json().await.unwrap();
    let own = delete_user(&admin, admin_id["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(own.status(), 409);

    // The admin deletes Bob: the same as Bob deleting himself.
    assert_eq!(delete_user(&admin, &bob_id).await.unwrap().status(), 204);
    assert_locked_out(&client, &stack, "bob@example.com", &bob, None).await;
    assert_forgotten(&deps, &bob_id, &order).await;
    assert_eq!(delete_user(&admin, &bob_id).await.unwrap().status(), 404);

    // Ann is untouched.
    let ann_data: Value = export(&client, &stack, &ann).await.json().await.unwrap();
    assert_eq!(ann_data["customer"]["full_name"], "Ann Example");
    assert!(
        ann_data["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["payload"]["email"] == "ann@example.com"),
        "{ann_data}"
    );

    // Catalog-order anonymises Ann (her deletion's event) while her token is still accepted (a
    // request in flight, a verifier not yet told of the revocation): nothing is written for her
    // any more, and every request that would write is answered 401 like a revoked token.
    let catalog_db = deps.catalog_db.pool().await;
    sqlx::query("UPDATE customers SET anonymised_at = now() WHERE id = $1::uuid")
        .bind(ann_data["account"]["id"].as_str().unwrap())
        .execute(&catalog_db)
        .await
        .unwrap();
    let orders_before: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&catalog_db)
        .await
        .unwrap();
    let put = client
        .put(stack.api("/v1/customers/me"))
        .bearer_auth(&ann)
        .json(&profile())
        .send()
        .await
        .unwrap();
    let get = client
        .get(stack.api("/v1/customers/me"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    let order = client
        .post(stack.api("/v1/orders"))
        .bearer_auth(&ann)
        .json(&json!({"lines": [{"item_id": item["id"], "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    for refused in [put, get, order] {
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
    }
    let orders_after: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&catalog_db)
        .await
        .unwrap();
    assert_eq!(orders_after, orders_before);
}
