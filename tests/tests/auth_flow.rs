//! The auth flow against the real `auth` binary: register, login, me, refresh, logout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Deps, Service};

#[tokio::test]
async fn a_customer_signs_up_signs_in_refreshes_and_signs_out() {
    let deps = Deps::new().await;
    let auth = Service::start("auth", &deps.env("auth"));
    auth.wait_ready(Duration::from_secs(20)).await;
    let client = testkit::http_client();
    let url = |path: &str| format!("{}{path}", auth.base);
    let credentials = json!({"email": "e2e@example.com", "password": "correct horse battery"});

    let r = client
        .post(url("/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pair: Value = client
        .post(url("/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let me = client
        .get(url("/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let refreshed: Value = client
        .post(url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": pair["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .post(url("/v1/auth/logout"))
        .json(&json!({"refresh_token": refreshed["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let me = client
        .get(url("/v1/auth/me"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);

    let jwks: Value = testkit::get(url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}
