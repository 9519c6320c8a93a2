//! Account e-mails across the real binaries: auth's job outbox → JetStream → the worker → SMTP.
//! Registration's verification e-mail and a forgotten password's reset e-mail each arrive once,
//! and the token of each link works once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{PASSWORD, Service, bin};
use testkit::{SmtpSink, TestDb, eventually, nats_namespace, nats_url};

/// The body of a message as the sink received it, undoing quoted-printable (lettre's choice for
/// mostly-ASCII text with a non-ASCII character, such as the signature's dash).
fn body_of(message: &str) -> String {
    let (headers, body) = message.split_once("\n\n").unwrap();
    if !headers
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return body.to_owned();
    }
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The token of the one link to `page` in `message`.
fn token_in(message: &str, page: &str) -> String {
    let body = body_of(message);
    let marker = format!("/{page}?token=");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {page} link in\n{body}"))
        + marker.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn the_worker_mails_each_account_link_once_and_each_token_works_once() {
    let db = TestDb::empty("e2e_auth").await;
    let out = Command::new(bin("auth"))
        .args(["migrate", "up"])
        .env("APP_ENV", "test")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "auth migrate up: {out:?}");
    let sink = SmtpSink::start().await;
    let base: HashMap<String, String> = HashMap::from([
        ("NATS_URL".to_owned(), nats_url()),
        ("NATS_NAMESPACE".to_owned(), nats_namespace()),
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
    ]);
    let mut auth_env = base.clone();
    auth_env.insert("DATABASE_URL".into(), db.url.clone());
    auth_env.insert(
        "ACCOUNT_LINK_BASE_URL".into(),
        "https://shop.example.com/".into(),
    );
    let mut worker_env = base;
    worker_env.insert("EMAIL_TRANSPORT".into(), "smtp".into());
    worker_env.insert("SMTP_URL".into(), sink.url());
    worker_env.insert("SCHEDULER_ENABLED".into(), "false".into());
    let auth = Service::start("auth", &auth_env);
    let worker = Service::start("worker", &worker_env);
    auth.wait_ready(Duration::from_secs(20)).await;
    worker.wait_ready(Duration::from_secs(20)).await;
    let client = testkit::http_client();
    let api = |path: &str| format!("{}{path}", auth.base);
    let post = |path: &str, body: serde_json::Value| client.post(api(path)).json(&body).send();
    let arrived = |n: usize| {
        let sink = &sink;
        async move {
            eventually(Duration::from_secs(30), || async {
                sink.messages().len() >= n
            })
            .await
        }
    };

    // Registration: one verification e-mail, whose link verifies the address once.
    let r = post(
        "/v1/auth/register",
        json!({"email": "ann@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        arrived(1).await,
        "no verification e-mail; worker log:\n{}",
        worker.logs()
    );
    let mail = &sink.messages()[0];
    assert!(mail.contains("ann@example.com"), "{mail}");
    assert!(
        body_of(mail).contains("https://shop.example.com/verify-email?token="),
        "{mail}"
    );
    let verification = token_in(mail, "verify-email");
    assert_eq!(verification.len(), 43, "{verification}");
    let verify = || post("/v1/auth/email/verify", json!({ "token": verification }));
    assert_eq!(verify().await.unwrap().status(), 204);
    assert_eq!(verify().await.unwrap().status(), 400);

    // A forgotten password: one reset e-mail (none for an unknown address), whose link sets a
    // new password once.
    for email in ["nobody@example.com", "ann@example.com"] {
        let r = post("/v1/auth/password/forgot", json!({ "email": email }))
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    assert!(
        arrived(2).await,
        "no reset e-mail; worker log:\n{}",
        worker.logs()
    );
    let mail = &sink.messages()[1];
    let link_token = token_in(mail, "reset-password");
    let new_password = "a brand new secret phrase";
    let reset = || {
        post(
            "/v1/auth/password/reset",
            json!({ "token": link_token, "password": new_password }),
        )
    };
    assert_eq!(reset().await.unwrap().status(), 204);
    assert_eq!(reset().await.unwrap().status(), 400);
    let login = |password: &str| {
        post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": password}),
        )
    };
    assert_eq!(login(PASSWORD).await.unwrap().status(), 401);
    let pair: serde_json::Value = login(new_password).await.unwrap().json().await.unwrap();
    let me: serde_json::Value = client
        .get(api("/v1/auth/me"))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);

    // Exactly once each: nothing more arrives meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|m| !m.contains("nobody@example.com")));
}
