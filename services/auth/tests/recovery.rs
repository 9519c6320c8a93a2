//! Account recovery and verification: verification links, forgotten passwords, password
//! changes, against the real app, its database and NATS. The e-mails are read off the `email`
//! family's consumer, as the worker would receive them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jobs::email::{PASSWORD_RESET_KIND, VERIFY_ADDRESS_KIND};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, TestAuth, problem, token};

const NEW_PASSWORD: &str = "a brand new secret phrase";

fn claims_of(pair: &Value) -> Value {
    let parts: Vec<&str> = pair["access_token"].as_str().unwrap().split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// A token of ours in form that was never issued.
fn forged() -> String {
    URL_SAFE_NO_PAD.encode([7u8; 32])
}

async fn verify(auth: &TestAuth, token: &str) -> Response {
    auth.post("/v1/auth/email/verify", json!({ "token": token }))
        .await
}

async fn forgot(auth: &TestAuth, email: &str) -> Response {
    auth.post("/v1/auth/password/forgot", json!({ "email": email }))
        .await
}

async fn reset(auth: &TestAuth, token: &str, password: &str) -> Response {
    auth.post(
        "/v1/auth/password/reset",
        json!({ "token": token, "password": password }),
    )
    .await
}

async fn refresh(auth: &TestAuth, pair: &Value) -> Response {
    auth.post(
        "/v1/auth/refresh",
        json!({ "refresh_token": token(pair, "refresh_token") }),
    )
    .await
}

async fn login_with(auth: &TestAuth, email: &str, password: &str) -> Response {
    auth.post(
        "/v1/auth/login",
        json!({ "email": email, "password": password }),
    )
    .await
}

async fn email_verified(auth: &TestAuth, pair: &Value) -> bool {
    let me = auth.me(&token(pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    me.json::<Value>().await.unwrap()["email_verified"]
        .as_bool()
        .unwrap()
}

async fn jobs_of(auth: &TestAuth, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_outbox WHERE kind = $1")
        .bind(kind)
        .fetch_one(&auth.db.pool().await)
        .await
        .unwrap()
}

async fn expire_tokens(auth: &TestAuth) {
    sqlx::query("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        .execute(&auth.db.pool().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn registration_sends_one_verification_link_that_verifies_the_address_once() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("ann@example.com").await;
    assert!(!email_verified(&auth, &pair).await);
    assert_eq!(claims_of(&pair)["email_verified"], false);

    let mails = auth.take_emails(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (kind, mail) = &mails[0];
    assert_eq!(kind, VERIFY_ADDRESS_KIND);
    assert_eq!(mail["email"], "ann@example.com");
    assert_eq!(mail["valid_for_minutes"], 24 * 60);
    let link = mail["link"].as_str().unwrap();
    assert!(
        link.starts_with("http://localhost:8080/verify-email?token="),
        "{link}"
    );
    let verification = support::link_token(link);

    assert_eq!(
        verify(&auth, &verification).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(email_verified(&auth, &pair).await);
    // The access token in hand was issued before; the next one says so.
    let next: Value = refresh(&auth, &pair).await.json().await.unwrap();
    assert_eq!(claims_of(&next)["email_verified"], true);
    assert_eq!(
        claims_of(&auth.login("ann@example.com").await)["email_verified"],
        true
    );

    // Single use.
    let again = problem(verify(&auth, &verification).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(again["errors"][0]["field"], "token", "{again}");

    // The database keeps the token's hash, never the token; the outbox row lost its link once
    // published.
    let db = auth.db.pool().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM account_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    let rows: Vec<Value> = sqlx::query_scalar("SELECT payload FROM job_outbox")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get("link").is_none(), "{}", rows[0]);
    assert!(!rows[0].to_string().contains(&verification));
}

#[tokio::test]
async fn forged_expired_and_foreign_verification_tokens_are_refused_and_change_nothing() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("bob@example.com").await;
    let verification = auth
        .email_token(VERIFY_ADDRESS_KIND, "bob@example.com")
        .await;

    for bad in [forged(), "not a token".to_owned(), String::new()] {
        problem(verify(&auth, &bad).await, StatusCode::BAD_REQUEST).await;
    }
    // A reset token proves the mailbox too, but it is no verification token.
    assert_eq!(
        forgot(&auth, "bob@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let reset_token = auth
        .email_token(PASSWORD_RESET_KIND, "bob@example.com")
        .await;
    problem(verify(&auth, &reset_token).await, StatusCode::BAD_REQUEST).await;

    expire_tokens(&auth).await;
    problem(verify(&auth, &verification).await, StatusCode::BAD_REQUEST).await;
    assert!(!email_verified(&auth, &pair).await);
}

#[tokio::test]
async fn a_resent_link_verifies_and_a_verified_address_is_not_sent_another() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("cy@example.com").await;
    let access = token(&pair, "access_token");
    auth.email_token(VERIFY_ADDRESS_KIND, "cy@example.com")
        .await;

    let r = auth
        .post_bearer("/v1/auth/email/verify/resend", &access, None)
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let resent = auth
        .email_token(VERIFY_ADDRESS_KIND, "cy@example.com")
        .await;
    assert_eq!(
        verify(&auth, &resent).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(email_verified(&auth, &pair).await);

    let r = auth
        .post_bearer("/v1/auth/email/verify/resend", &access, None)
        .await;
    problem(r, StatusCode::CONFLICT).await;
    assert_eq!(jobs_of(&auth, VERIFY_ADDRESS_KIND).await, 2);
    let r = auth.post("/v1/auth/email/verify/resend", json!({})).await;
    problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn forgot_answers_202_for_any_address_and_only_a_known_one_gets_an_email() {
    let auth = TestAuth::spawn().await;
    auth.register("dee@example.com").await;
    auth.email_token(VERIFY_ADDRESS_KIND, "dee@example.com")
        .await;

    for email in ["  DEE@example.com ", "nobody@example.com"] {
        let r = forgot(&auth, email).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{email}");
        assert!(r.text().await.unwrap().is_empty());
    }
    assert_eq!(jobs_of(&auth, PASSWORD_RESET_KIND).await, 1);
    let mails = auth.take_emails(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, PASSWORD_RESET_KIND);
    assert_eq!(mails[0].1["email"], "dee@example.com");
    assert_eq!(mails[0].1["valid_for_minutes"], 30);
    assert!(
        mails[0].1["link"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:8080/reset-password?token=")
    );
    let tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_tokens WHERE purpose = 'reset_password'
           AND expires_at BETWEEN now() + interval '29 minutes' AND now() + interval '30 minutes'",
    )
    .fetch_one(&auth.db.pool().await)
    .await
    .unwrap();
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn one_address_gets_at_most_five_reset_emails_an_hour() {
    let auth = TestAuth::spawn().await;
    auth.register("eve@example.com").await;
    for _ in 0..7 {
        assert_eq!(
            forgot(&auth, "eve@example.com").await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(jobs_of(&auth, PASSWORD_RESET_KIND).await, 5);
}

#[tokio::test]
async fn a_reset_link_sets_the_password_once_and_ends_every_session() {
    let auth = TestAuth::spawn().await;
    let first = auth.customer("fay@example.com").await;
    let second = auth.login("fay@example.com").await;
    assert_eq!(
        forgot(&auth, "fay@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let older = auth
        .email_token(PASSWORD_RESET_KIND, "fay@example.com")
        .await;
    assert_eq!(
        forgot(&auth, "fay@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let link = auth
        .email_token(PASSWORD_RESET_KIND, "fay@example.com")
        .await;

    assert_eq!(
        reset(&auth, &link, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    for pair in [&first, &second] {
        problem(refresh(&auth, pair).await, StatusCode::UNAUTHORIZED).await;
        problem(
            auth.me(&token(pair, "access_token")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    problem(
        login_with(&auth, "fay@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = login_with(&auth, "fay@example.com", NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Following the link proved the mailbox.
    assert!(email_verified(&auth, &r.json().await.unwrap()).await);

    // Neither this link nor an older one works again.
    for used in [&link, &older] {
        problem(
            reset(&auth, used, "yet another long password").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_eq!(
        login_with(&auth, "fay@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_forged_or_foreign_reset_tokens_are_400_and_change_nothing() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("gus@example.com").await;
    let verification = auth
        .email_token(VERIFY_ADDRESS_KIND, "gus@example.com")
        .await;
    forgot(&auth, "gus@example.com").await;
    let link = auth
        .email_token(PASSWORD_RESET_KIND, "gus@example.com")
        .await;

    // A password too short is refused before the token is looked at; the token stays good.
    let short = problem(
        reset(&auth, &link, "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(short["errors"][0]["field"], "password", "{short}");

    for bad in [forged(), "x".repeat(43), "short".to_owned(), verification] {
        let p = problem(
            reset(&auth, &bad, NEW_PASSWORD).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "token", "{p}");
    }
    expire_tokens(&auth).await;
    problem(
        reset(&auth, &link, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Nothing changed: the old password works, the session lives, the address is unverified.
    assert_eq!(
        login_with(&auth, "gus@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(refresh(&auth, &pair).await.status(), StatusCode::OK);
    assert!(!email_verified(&auth, &auth.login("gus@example.com").await).await);
}

async fn change(auth: &TestAuth, pair: &Value, current: &str, password: &str) -> Response {
    auth.post_bearer(
        "/v1/auth/password",
        &token(pair, "access_token"),
        Some(json!({ "current_password": current, "password": password })),
    )
    .await
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_but_not_the_callers() {
    let auth = TestAuth::spawn().await;
    let mine = auth.customer("hal@example.com").await;
    let other = auth.login("hal@example.com").await;
    forgot(&auth, "hal@example.com").await;
    let link = auth
        .email_token(PASSWORD_RESET_KIND, "hal@example.com")
        .await;

    assert_eq!(
        change(&auth, &mine, PASSWORD, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        auth.me(&token(&mine, "access_token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(refresh(&auth, &mine).await.status(), StatusCode::OK);
    problem(
        auth.me(&token(&other, "access_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(refresh(&auth, &other).await, StatusCode::UNAUTHORIZED).await;
    problem(
        login_with(&auth, "hal@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        login_with(&auth, "hal@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // A reset link sent before the change dies with the old password.
    problem(reset(&auth, &link, PASSWORD).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_wrong_current_password_is_refused_and_counts_as_a_failed_login() {
    let auth = TestAuth::spawn_with(|s| s.auth.login_max_failures = 2).await;
    let pair = auth.customer("ida@example.com").await;
    for _ in 0..2 {
        let p = problem(
            change(&auth, &pair, "not the password", NEW_PASSWORD).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert!(!p.to_string().contains("not the password"));
    }
    // This address is now blocked for this email, the right password included, as at login.
    let r = change(&auth, &pair, PASSWORD, NEW_PASSWORD).await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(refresh(&auth, &pair).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_input_is_a_problem_like_everywhere_else() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("jo@example.com").await;
    let access = token(&pair, "access_token");
    let cases = [
        ("/v1/auth/email/verify", json!({}), "token"),
        ("/v1/auth/password/forgot", json!({}), "email"),
        (
            "/v1/auth/password/forgot",
            json!({"email": "not-an-address"}),
            "email",
        ),
        (
            "/v1/auth/password/forgot",
            json!({"email": "jo@example.com", "role": "x"}),
            "role",
        ),
        (
            "/v1/auth/password/reset",
            json!({"token": forged()}),
            "password",
        ),
        (
            "/v1/auth/password/reset",
            json!({"password": NEW_PASSWORD}),
            "token",
        ),
        (
            "/v1/auth/password",
            json!({"password": NEW_PASSWORD}),
            "current_password",
        ),
        (
            "/v1/auth/password",
            json!({"current_password": PASSWORD, "password": "short"}),
            "password",
        ),
    ];
    for (path, body, field) in cases {
        let r = auth.post_bearer(path, &access, Some(body.clone())).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["field"], field, "{path} {body}: {p}");
    }
    for path in [
        "/v1/auth/email/verify",
        "/v1/auth/password/forgot",
        "/v1/auth/password/reset",
        "/v1/auth/password",
    ] {
        let r = auth
            .client
            .post(auth.url(path))
            .bearer_auth(&access)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    let r = auth
        .post(
            "/v1/auth/password",
            json!({"current_password": PASSWORD, "password": NEW_PASSWORD}),
        )
        .await;
    problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(jobs_of(&auth, PASSWORD_RESET_KIND).await, 0);
}

#[tokio::test]
async fn forgot_takes_as_long_for_an_unknown_address_as_for_a_known_one() {
    // A fresh address per request: the per-address cap must not turn known addresses into
    // no-ops halfway through.
    const N: usize = 40;
    let auth = TestAuth::spawn().await;
    for i in 0..N {
        auth.register(&format!("known{i}@example.com")).await;
    }
    // Warm-up: connections, prepared statements, the relay's first pass.
    for i in 0..5 {
        forgot(&auth, &format!("warm{i}@example.com")).await;
    }
    let time = |email: String| {
        let auth = &auth;
        async move {
            let started = Instant::now();
            let r = forgot(auth, &email).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            started.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, so that a burst of load elsewhere on the machine hits both alike.
    for i in 0..N {
        known.push(time(format!("known{i}@example.com")).await);
        unknown.push(time(format!("unknown{i}@example.com")).await);
    }
    assert_eq!(jobs_of(&auth, PASSWORD_RESET_KIND).await, N as i64);
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[N / 2], unknown[N / 2]);
    eprintln!("forgot, median of {N}: known {known:?}, unknown {unknown:?}");
    // Both paths run the same statements (a few ms); a path that skipped the database for
    // unknown addresses, or sent the e-mail inline, would differ by more than this bound.
    let slack = Duration::from_millis(3);
    assert!(
        known <= unknown * 3 / 2 + slack && unknown <= known * 3 / 2 + slack,
        "median known {known:?}, unknown {unknown:?}"
    );
}
