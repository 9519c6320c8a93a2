//! Access tokens under attack, revocation seen by a second verifier, key rotation, rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authn::revocation::{self, RevocationList};
use authn::{AuthError, Verifier, VerifierConfig};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::config::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestAuth, problem, token};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The claims auth would issue for the user and session of `pair`, to be bent by each attack.
fn claims_of(pair: &Value) -> Value {
    let parts: Vec<&str> = pair["access_token"].as_str().unwrap().split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

fn kid_of(pair: &Value) -> String {
    jsonwebtoken::decode_header(pair["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap()
}

fn sign_with(pem: &str, kid: Option<String>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid;
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn unsigned(header: Value, claims: &Value, signature: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", enc(&header), enc(claims))
}

#[tokio::test]
async fn forged_and_bent_tokens_are_refused() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("target@example.com").await;
    let pem = auth
        .settings
        .auth
        .auth_signing_keys
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let kid = kid_of(&pair);
    let claims = claims_of(&pair);

    // Signed with the real key, the claims as issued: accepted (the harness itself is sound).
    let genuine = sign_with(&pem, Some(kid.clone()), &claims);
    assert_eq!(auth.me(&genuine).await.status(), StatusCode::OK);

    let bent = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        c
    };
    let jwk: Value = testkit::get(auth.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_x = URL_SAFE_NO_PAD
        .decode(jwk["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let hs256 = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &header,
            &bent(&|c| c["role"] = json!("admin")),
            &EncodingKey::from_secret(&public_x),
        )
        .unwrap()
    };
    let tampered = {
        let parts: Vec<&str> = genuine.split('.').collect();
        let admin = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&bent(&|c| c["role"] = json!("admin"))).unwrap());
        format!("{}.{admin}.{}", parts[0], parts[2])
    };
    let other_key = auth::keys::generate_pem().unwrap();

    let attacks: Vec<(&str, String, &str)> = vec![
        // `none` is not even an algorithm the header parser knows.
        (
            "alg none",
            unsigned(
                json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims,
                "",
            ),
            "malformed token",
        ),
        (
            "HS256 keyed with the public key",
            hs256,
            "token algorithm not accepted",
        ),
        (
            "claims edited after signing",
            tampered,
            "invalid token signature",
        ),
        (
            "expired",
            sign_with(
                &pem,
                Some(kid.clone()),
                &bent(&|c| {
                    c["exp"] = json!(now() - 120);
                    c["iat"] = json!(now() - 1000);
                    c["nbf"] = json!(now() - 1000);
                }),
            ),
            "token expired",
        ),
        (
            "not yet valid",
            sign_with(
                &pem,
                Some(kid.clone()),
                &bent(&|c| c["nbf"] = json!(now() + 600)),
            ),
            "token not yet valid",
        ),
        (
            "wrong audience",
            sign_with(
                &pem,
                Some(kid.clone()),
                &bent(&|c| c["aud"] = json!("someone-else")),
            ),
            "token audience not accepted",
        ),
        (
            "wrong issuer",
            sign_with(
                &pem,
                Some(kid.clone()),
                &bent(&|c| c["iss"] = json!("evil")),
            ),
            "token issuer not accepted",
        ),
        (
            "unknown kid",
            sign_with(&pem, Some("nope".into()), &claims),
            "token signed by an unknown key",
        ),
        (
            "no kid",
            sign_with(&pem, None, &claims),
            "token signed by an unknown key",
        ),
        (
            "another key under the real kid",
            sign_with(&other_key, Some(kid.clone()), &claims),
            "invalid token signature",
        ),
        (
            "missing exp",
            sign_with(
                &pem,
                Some(kid.clone()),
                &bent(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            "malformed token",
        ),
        ("garbage", "a.b.c".into(), "malformed token"),
    ];
    for (name, forged, detail) in attacks {
        let r = auth.me(&forged).await;
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{name}");
        let p = problem(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(p["detail"], detail, "{name}");
    }
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_another_verifier_within_a_second() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("revoke@example.com").await;
    let access = token(&pair, "access_token");

    // A second verifier as catalog-order runs it: keys from the JWKS URL, its own watcher.
    let list = RevocationList::new(Duration::from_secs(900));
    let nats = async_nats::connect(testkit::nats_url()).await.unwrap();
    let ns = platform::nats::Namespace::new(&auth.settings.nats.nats_namespace).unwrap();
    let bucket = revocation::bucket(
        &async_nats::jetstream::new(nats),
        &ns,
        Duration::from_secs(900),
        1,
    )
    .await
    .unwrap();
    let shutdown = platform::shutdown::Shutdown::new();
    revocation::spawn_watcher(bucket, list.clone(), &shutdown);
    let other = Arc::new(
        Verifier::with_jwks_url(
            VerifierConfig::new("storefront-auth", "storefront"),
            auth.url("/.well-known/jwks.json"),
            list,
        )
        .unwrap(),
    );
    let claims = other.verify(&access).await.unwrap();
    assert_eq!(claims.role, authn::Role::Customer);

    let r = auth
        .post(
            "/v1/auth/logout",
            json!({"refresh_token": token(&pair, "refresh_token")}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    loop {
        match other.verify(&access).await {
            Err(AuthError::Revoked) => break,
            Ok(_) => assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "still accepted after 1 s"
            ),
            Err(e) => panic!("unexpected {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.trigger();
}

#[tokio::test]
async fn rotating_keys_keeps_old_tokens_valid_until_the_old_key_is_removed() {
    let old_pem = auth::keys::generate_pem().unwrap();
    let new_pem = auth::keys::generate_pem().unwrap();
    let first =
        TestAuth::spawn_with(|s| s.auth.auth_signing_keys = Some(Secret::new(old_pem.clone())))
            .await;
    let old_token = first.customer("keys@example.com").await;
    let old_kid = kid_of(&old_token);

    // Rotation: the new key first (it signs), the old one still listed (it verifies).
    let (db, mut settings) = first.stop().await;
    settings.auth.auth_signing_keys = Some(Secret::new(format!("{new_pem}{old_pem}")));
    let rotated = TestAuth::start(db, settings).await;
    assert_eq!(
        rotated
            .me(&token(&old_token, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
    let new_token = rotated.login("keys@example.com").await;
    assert_ne!(kid_of(&new_token), old_kid);
    let jwks: Value = testkit::get(rotated.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    // The old key removed: its tokens stop verifying, the new ones go on.
    let (db, mut settings) = rotated.stop().await;
    settings.auth.auth_signing_keys = Some(Secret::new(new_pem));
    let after = TestAuth::start(db, settings).await;
    let p = problem(
        after.me(&token(&old_token, "access_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(p["detail"], "token signed by an unknown key");
    assert_eq!(
        after.me(&token(&new_token, "access_token")).await.status(),
        StatusCode::OK
    );
}

async fn login_from(auth: &TestAuth, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = auth
        .client
        .post(auth.url("/v1/auth/login"))
        .json(&json!({"email": "rl@example.com", "password": "wrong password!"}));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_client_ip() {
    let auth = TestAuth::spawn_with(|s| {
        s.auth.rate_limit_auth_per_minute = 1;
        s.auth.rate_limit_auth_burst = 3;
        s.auth.login_max_failures = 100;
    })
    .await;
    for i in 0..3 {
        // Spoofed X-Forwarded-For from an untrusted peer changes nothing.
        let r = login_from(&auth, Some(&format!("10.0.0.{i}"))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login_from(&auth, Some("10.9.9.9")).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    // Register and refresh share the budget; other routes do not.
    let r = auth
        .post(
            "/v1/auth/register",
            json!({"email": "x@example.com", "password": "p"}),
        )
        .await;
    problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        testkit::get(auth.url("/.well-known/jwks.json"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        auth.metrics_text()
            .await
            .contains(r#"rate_limited_total{scope="auth",service="auth"} 2"#)
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() {
    let auth = TestAuth::spawn_with(|s| {
        s.platform.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.auth.rate_limit_auth_per_minute = 1;
        s.auth.rate_limit_auth_burst = 2;
        s.auth.login_max_failures = 100;
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            assert_eq!(
                login_from(&auth, Some(client)).await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        problem(
            login_from(&auth, Some(client)).await,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
}

/// A cheap limited request (register with an invalid body: 422 once past the limit) from
/// `client`, as forwarded by a trusted proxy, to the instance at `base`.
async fn register_from(auth: &TestAuth, base: &str, client: &str) -> StatusCode {
    auth.client
        .post(format!("{base}/v1/auth/register"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": "not an address", "password": "p"}))
        .send()
        .await
        .unwrap()
        .status()
}

/// Requests of `client` let through (not 429) out of `attempts`, sent round-robin to `bases`.
async fn allowed_round_robin(
    auth: &TestAuth,
    bases: &[&str],
    client: &str,
    attempts: usize,
) -> usize {
    let mut allowed = 0;
    for i in 0..attempts {
        let status = register_from(auth, bases[i % bases.len()], client).await;
        if status != StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            allowed += 1;
        }
    }
    allowed
}

#[tokio::test]
async fn a_clients_budget_does_not_grow_with_replicas_nor_reset_on_a_restart() {
    const BURST: usize = 10;
    let auth = TestAuth::spawn_with(|s| {
        s.platform.trusted_proxies = vec!["127.0.0.1/32".into()];
        // One request a minute refills nothing during the test: the budget is the burst.
        s.auth.rate_limit_auth_per_minute = 1;
        s.auth.rate_limit_auth_burst = BURST as u32;
    })
    .await;
    let second = auth.replica().await;
    let third = auth.replica().await;

    // Per-replica memory would let 2 × and 3 × the burst through.
    let two = [auth.base.as_str(), second.base.as_str()];
    let allowed = allowed_round_robin(&auth, &two, "198.51.100.2", 3 * BURST).await;
    assert!(
        (BURST..=BURST + 1).contains(&allowed),
        "2 replicas let {allowed} through"
    );
    let three = [
        auth.base.as_str(),
        second.base.as_str(),
        third.base.as_str(),
    ];
    let allowed = allowed_round_robin(&auth, &three, "198.51.100.3", 4 * BURST).await;
    assert!(
        (BURST..=BURST + 1).contains(&allowed),
        "3 replicas let {allowed} through"
    );
    // Each replica refused from the stored state, with the wait it implies (~1 min per request).
    let limited = auth
        .client
        .post(format!("{}/v1/auth/login", third.base))
        .header("x-forwarded-for", "198.51.100.3")
        .json(&json!({"email": "a@example.com", "password": "p"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (50..=61).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;

    // Another client address has its whole budget, whichever replica it reaches.
    let allowed = allowed_round_robin(&auth, &three, "198.51.100.4", BURST).await;
    assert_eq!(allowed, BURST);

    // A restart of every instance resets nothing.
    drop((second, third));
    let (db, settings) = auth.stop().await;
    let auth = TestAuth::start(db, settings).await;
    assert_eq!(
        register_from(&auth, &auth.base, "198.51.100.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        register_from(&auth, &auth.base, "198.51.100.5").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
