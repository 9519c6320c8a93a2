//! Register, login, me: the happy paths and every way a client can get them wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{PASSWORD, TestAuth, problem, token};

#[tokio::test]
async fn a_new_customer_registers_logs_in_and_sees_themselves() {
    let auth = TestAuth::spawn().await;
    let registered = auth.register("  Ann.Lee@Example.COM ").await;
    assert_eq!(registered["email"], "ann.lee@example.com");
    assert_eq!(registered["role"], "customer");

    // Any capitalisation of the address is the same account.
    let pair = auth.login("ANN.LEE@example.com").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let me = auth.me(&token(&pair, "access_token")).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.headers()["cache-control"], "private, no-store");
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["id"], registered["id"]);
    assert_eq!(me["role"], "customer");
}

#[tokio::test]
async fn registration_refuses_bad_input_and_writes_nothing() {
    let auth = TestAuth::spawn().await;
    let long_password = "x".repeat(129);
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"email": "a@example.com", "password": "short"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": long_password}),
            vec!["password"],
        ),
        (
            json!({"email": "nope", "password": "short"}),
            vec!["email", "password"],
        ),
        (
            json!({"email": "x'; DROP TABLE users; --@example.com", "password": PASSWORD}),
            vec!["email"],
        ),
        (json!({"email": 42, "password": PASSWORD}), vec!["email"]),
        (json!({"email": "a@example.com"}), vec!["password"]),
        // Mass assignment: a client cannot choose its role.
        (
            json!({"email": "a@example.com", "password": PASSWORD, "role": "admin"}),
            vec!["role"],
        ),
    ];
    for (body, fields) in cases {
        let r = auth.post("/v1/auth/register", body.clone()).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        let got: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{body}: {p}");
    }
    for raw in ["{", "{\"email\": \"a@example.com\",", "", "nul\u{0}"] {
        let r = auth
            .client
            .post(auth.url("/v1/auth/register"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    let huge = json!({"email": "a@example.com", "password": "p".repeat(2 * 1024 * 1024)});
    problem(
        auth.post("/v1/auth/register", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(auth.count("users").await, 0);
}

#[tokio::test]
async fn an_email_is_registered_once_whatever_its_case() {
    let auth = TestAuth::spawn().await;
    auth.register("dup@example.com").await;
    let r = auth
        .post(
            "/v1/auth/register",
            json!({"email": "DUP@Example.com", "password": PASSWORD}),
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;
    assert_eq!(auth.count("users").await, 1);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let auth = TestAuth::spawn().await;
    auth.register("known@example.com").await;
    let wrong = auth
        .post(
            "/v1/auth/login",
            json!({"email": "known@example.com", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let wrong = problem(wrong, StatusCode::UNAUTHORIZED).await;
    let unknown = auth
        .post(
            "/v1/auth/login",
            json!({"email": "ghost@example.com", "password": "wrong password!"}),
        )
        .await;
    let unknown = problem(unknown, StatusCode::UNAUTHORIZED).await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(wrong["title"], unknown["title"]);
    // A malformed address is just another unknown one.
    let odd = auth
        .post(
            "/v1/auth/login",
            json!({"email": "' OR 1=1 --", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(
        problem(odd, StatusCode::UNAUTHORIZED).await["detail"],
        wrong["detail"]
    );
}

#[tokio::test]
async fn an_overlong_password_is_refused_before_hashing() {
    let auth = TestAuth::spawn().await;
    let r = auth
        .post(
            "/v1/auth/login",
            json!({"email": "a@example.com", "password": "p".repeat(100_000)}),
        )
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "password");
}

/// A login attempt at `email` from `client` (as forwarded by a trusted proxy) to `base`.
async fn login_at(
    auth: &TestAuth,
    base: &str,
    client: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    auth.client
        .post(format!("{base}/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

fn slowed(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("auth_login_slowed_total"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_stranger_is_blocked_at_their_address_while_the_owner_still_logs_in_from_another() {
    const ATTACKER: &str = "203.0.113.66";
    const OWNER: &str = "198.51.100.20";
    let auth = TestAuth::spawn_with(|s| {
        s.platform.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.auth.login_max_failures = 3;
        s.auth.login_account_max_delay = std::time::Duration::from_secs(1);
    })
    .await;
    // Two instances: the counters live in the database, not in either of them.
    let replica = auth.replica().await;
    let bases = [auth.base.as_str(), replica.base.as_str()];
    auth.register("target@example.com").await;

    for i in 0..3 {
        let r = login_at(
            &auth,
            bases[i % 2],
            ATTACKER,
            "Target@Example.com",
            "wrong password!",
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED).await;
    }
    // Blocked at the attacker's address, on either instance, even with the right password: the
    // answer does not tell a guesser they were right.
    for base in bases {
        let blocked = login_at(&auth, base, ATTACKER, "target@example.com", PASSWORD).await;
        let retry_after: u64 = blocked.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry_after));
        problem(blocked, StatusCode::TOO_MANY_REQUESTS).await;
    }

    // The owner, from another address, gets in: slowed down a little (the account has seen 3
    // failures), never refused.
    let before = slowed(&auth.metrics_text().await);
    let started = std::time::Instant::now();
    let r = login_at(&auth, &auth.base, OWNER, "target@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(250) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(slowed(&auth.metrics_text().await), before + 1);

    // The owner's success frees the owner's address only: the attacker is still blocked.
    problem(
        login_at(
            &auth,
            &replica.base,
            ATTACKER,
            "target@example.com",
            PASSWORD,
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;

    // Unknown emails behave exactly the same (no enumeration): blocked at the address, slowed
    // elsewhere.
    for _ in 0..3 {
        let r = login_at(
            &auth,
            &auth.base,
            ATTACKER,
            "nobody@example.com",
            "wrong password!",
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED).await;
    }
    problem(
        login_at(
            &auth,
            &replica.base,
            ATTACKER,
            "nobody@example.com",
            "wrong password!",
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    let before = slowed(&auth.metrics_text().await);
    problem(
        login_at(
            &auth,
            &auth.base,
            OWNER,
            "nobody@example.com",
            "wrong password!",
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(slowed(&auth.metrics_text().await), before + 1);

    // Once the block expires (1 s after the 3rd failure), the right password gets in from the
    // blocked address too, and clears its counter.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = login_at(
        &auth,
        &replica.base,
        ATTACKER,
        "target@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let pairs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM login_throttle_pairs WHERE email = 'target@example.com'",
    )
    .fetch_one(&auth.db.pool().await)
    .await
    .unwrap();
    assert_eq!(pairs, 0);
    // Of the four refusals, this instance answered one (the replica the others).
    assert!(
        auth.metrics_text()
            .await
            .contains(r#"auth_logins_total{outcome="throttled",service="auth"} 1"#)
    );
}

#[tokio::test]
async fn the_account_slow_down_is_bounded_however_many_addresses_fail() {
    let auth = TestAuth::spawn_with(|s| {
        s.platform.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.auth.login_max_failures = 2;
        s.auth.login_account_max_delay = std::time::Duration::from_millis(600);
    })
    .await;
    auth.register("busy@example.com").await;
    // Ten addresses, one failure each: no address is blocked, the account is slowed.
    for i in 0..10 {
        let r = login_at(
            &auth,
            &auth.base,
            &format!("203.0.113.{i}"),
            "busy@example.com",
            "wrong password!",
        )
        .await;
        problem(r, StatusCode::UNAUTHORIZED).await;
    }
    let started = std::time::Instant::now();
    let r = login_at(
        &auth,
        &auth.base,
        "198.51.100.1",
        "busy@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(600) && took < std::time::Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_unknown_email_costs_as_much_as_a_wrong_password() {
    // Real OWASP parameters: the point is that the dummy hash is as expensive as a real one.
    let auth = TestAuth::spawn_with(|s| {
        s.auth.argon2_memory_kib = auth::settings::OWASP_ARGON2_MEMORY_KIB;
        s.auth.argon2_iterations = 2;
        s.auth.login_max_failures = 1000;
    })
    .await;
    auth.register("timing@example.com").await;
    let time = |email: &'static str| {
        let auth = &auth;
        async move {
            let mut runs = Vec::new();
            for _ in 0..5 {
                let started = std::time::Instant::now();
                let r = auth
                    .post(
                        "/v1/auth/login",
                        json!({"email": email, "password": "wrong password!"}),
                    )
                    .await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
                runs.push(started.elapsed());
            }
            runs.sort();
            runs[2]
        }
    };
    let wrong = time("timing@example.com").await;
    let unknown = time("nobody@example.com").await;
    // Without the dummy hash an unknown email answers in ~1 ms against tens of ms; a factor of 3
    // leaves room for a loaded CI machine and still catches that.
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "wrong password {wrong:?}, unknown email {unknown:?}"
    );
}

#[tokio::test]
async fn me_refuses_missing_and_broken_authorization_headers() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("h@example.com").await;
    let access = token(&pair, "access_token");
    let huge = "a".repeat(20 * 1024);
    let cases: Vec<Option<String>> = vec![
        None,
        Some(access.clone()),                   // no scheme
        Some(format!("Basic {access}")),        // another scheme
        Some(format!("Bearer {access} extra")), // extra part
        Some("Bearer".into()),
        Some("Bearer not.a.jwt".into()),
        Some(format!("Bearer {huge}")),
    ];
    for header in cases {
        let mut req = auth.client.get(auth.url("/v1/auth/me"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{header:?}");
        problem(r, StatusCode::UNAUTHORIZED).await;
    }
}
