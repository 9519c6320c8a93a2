//! Refresh rotation, reuse detection, logout, logout-all, and what an admin's changes do to a
//! user's sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestAuth, problem, token};
use time::OffsetDateTime;

async fn refresh(auth: &TestAuth, refresh_token: &str) -> reqwest::Response {
    auth.post("/v1/auth/refresh", json!({"refresh_token": refresh_token}))
        .await
}

#[tokio::test]
async fn refreshing_rotates_the_refresh_token_and_keeps_the_session() {
    let auth = TestAuth::spawn().await;
    let first = auth.customer("rot@example.com").await;
    let r = refresh(&auth, &token(&first, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(auth.me(&token(&second, "access_token")).await.status(), 200);
    // The new refresh token works in turn.
    let third = refresh(&auth, &token(&second, "refresh_token")).await;
    assert_eq!(third.status(), StatusCode::OK);
    // Stored as hashes only: the raw token is nowhere in the table.
    let raw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
    )
    .bind(token(&second, "refresh_token"))
    .fetch_one(&auth.db.pool().await)
    .await
    .unwrap();
    assert_eq!(raw, 0);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let auth = TestAuth::spawn().await;
    let stolen = auth.customer("victim@example.com").await;
    // The legitimate client rotates…
    let legit: Value = refresh(&auth, &token(&stolen, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    // …then the thief replays the old token.
    let replay = refresh(&auth, &token(&stolen, "refresh_token")).await;
    let p = problem(replay, StatusCode::UNAUTHORIZED).await;
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");

    // Everything of that session is dead: the newest refresh token and both access tokens.
    problem(
        refresh(&auth, &token(&legit, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    for pair in [&stolen, &legit] {
        let me = auth.me(&token(pair, "access_token")).await;
        assert_eq!(
            problem(me, StatusCode::UNAUTHORIZED).await["detail"],
            "session revoked"
        );
    }
    assert!(
        auth.metrics_text()
            .await
            .contains("auth_refresh_reuse_total{service=\"auth\"} 1")
    );
}

#[tokio::test]
async fn concurrent_uses_of_one_refresh_token_yield_at_most_one_new_pair() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("race@example.com").await;
    let rt = token(&pair, "refresh_token");
    let attempts = (0..8).map(|_| refresh(&auth, &rt));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok <= 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn garbage_refresh_tokens_are_401_problems() {
    let auth = TestAuth::spawn().await;
    for bad in ["", "x", "' OR '1'='1", &"A".repeat(43), &"A".repeat(10_000)] {
        problem(refresh(&auth, bad).await, StatusCode::UNAUTHORIZED).await;
    }
    let wrong_type = auth
        .post("/v1/auth/refresh", json!({"refresh_token": 12}))
        .await;
    problem(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn logout_revokes_the_session_and_its_access_tokens() {
    let auth = TestAuth::spawn().await;
    let pair = auth.customer("bye@example.com").await;
    let other = auth.login("bye@example.com").await;
    let r = auth
        .post(
            "/v1/auth/logout",
            json!({"refresh_token": token(&pair, "refresh_token")}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(
        refresh(&auth, &token(&pair, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        auth.me(&token(&pair, "access_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Another session of the same user is untouched.
    assert_eq!(auth.me(&token(&other, "access_token")).await.status(), 200);
    // Logging out twice is harmless; an unknown token is refused.
    let again = auth
        .post(
            "/v1/auth/logout",
            json!({"refresh_token": token(&pair, "refresh_token")}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let unknown = auth
        .post("/v1/auth/logout", json!({"refresh_token": "B".repeat(43)}))
        .await;
    problem(unknown, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn logout_all_revokes_every_session_of_the_user_only() {
    let auth = TestAuth::spawn().await;
    let a1 = auth.customer("all@example.com").await;
    let a2 = auth.login("all@example.com").await;
    let b = auth.customer("bystander@example.com").await;
    let r = auth
        .post_bearer("/v1/auth/logout-all", &token(&a1, "access_token"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for pair in [&a1, &a2] {
        problem(
            auth.me(&token(pair, "access_token")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        problem(
            refresh(&auth, &token(pair, "refresh_token")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(auth.me(&token(&b, "access_token")).await.status(), 200);
    // Signing in again works.
    auth.login("all@example.com").await;
}

async fn patch_user(auth: &TestAuth, admin: &Value, id: &str, body: Value) -> reqwest::Response {
    auth.client
        .patch(auth.url(&format!("/v1/auth/users/{id}")))
        .bearer_auth(token(admin, "access_token"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn user_id(auth: &TestAuth, pair: &Value) -> String {
    let me: Value = auth
        .me(&token(pair, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_blocks_login_and_refresh() {
    let auth = TestAuth::spawn().await;
    let admin = auth.admin("boss@example.com").await;
    let user = auth.customer("mallory@example.com").await;
    let id = user_id(&auth, &user).await;

    let r = patch_user(&auth, &admin, &id, json!({"disabled": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["disabled"], true);

    problem(
        auth.me(&token(&user, "access_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        refresh(&auth, &token(&user, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let login = auth
        .post(
            "/v1/auth/login",
            json!({"email": "mallory@example.com", "password": support::PASSWORD}),
        )
        .await;
    problem(login, StatusCode::FORBIDDEN).await;

    // Re-enabled, they can sign in again.
    patch_user(&auth, &admin, &id, json!({"disabled": false})).await;
    auth.login("mallory@example.com").await;
}

#[tokio::test]
async fn a_role_change_takes_effect_at_the_next_login() {
    let auth = TestAuth::spawn().await;
    let admin = auth.admin("root@example.com").await;
    let user = auth.customer("promoted@example.com").await;
    let id = user_id(&auth, &user).await;
    problem(
        auth.get_bearer("/v1/auth/users", &token(&user, "access_token"))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let r = patch_user(&auth, &admin, &id, json!({"role": "admin"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The old token said "customer": it is revoked rather than left lying.
    problem(
        auth.me(&token(&user, "access_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let fresh = auth.login("promoted@example.com").await;
    assert_eq!(
        auth.get_bearer("/v1/auth/users", &token(&fresh, "access_token"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn admin_changes_are_validated() {
    let auth = TestAuth::spawn().await;
    let admin = auth.admin("chief@example.com").await;
    let user = auth.customer("subject@example.com").await;
    let id = user_id(&auth, &user).await;
    let admin_id = user_id(&auth, &admin).await;

    problem(
        patch_user(&auth, &admin, &id, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let p = problem(
        patch_user(&auth, &admin, &id, json!({"role": "root"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "role");
    problem(
        patch_user(&auth, &admin, &id, json!({"disabled": "yes"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        patch_user(&auth, &admin, &id, json!({"email": "x@example.com"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let unknown = uuid::Uuid::new_v4().to_string();
    problem(
        patch_user(&auth, &admin, &unknown, json!({"disabled": true})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let p = problem(
        patch_user(&auth, &admin, "not-a-uuid", json!({"disabled": true})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "id");
    problem(
        patch_user(&auth, &admin, &admin_id, json!({"role": "customer"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    problem(
        patch_user(&auth, &user, &admin_id, json!({"disabled": true})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn admins_page_through_every_user_exactly_once() {
    let auth = TestAuth::spawn().await;
    let admin = auth.admin("lister@example.com").await;
    for i in 0..6 {
        auth.register(&format!("user{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/auth/users?limit=3&cursor={c}"),
            None => "/v1/auth/users?limit=3".to_owned(),
        };
        let page: Value = auth
            .get_bearer(&path, &token(&admin, "access_token"))
            .await
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            assert!(item.get("password_hash").is_none());
            seen.push(item["email"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(unique.len(), 7);

    let at = token(&admin, "access_token");
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=forged",
        "sort=email",
    ] {
        let r = auth.get_bearer(&format!("/v1/auth/users?{bad}"), &at).await;
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    let anonymous = auth
        .client
        .get(auth.url("/v1/auth/users"))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

/// The emails of the users who still have a session.
async fn sessions_of(auth: &TestAuth) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT u.email FROM sessions s JOIN users u ON u.id = s.user_id ORDER BY u.email",
    )
    .fetch_all(&auth.db.pool().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn ended_sessions_are_purged_after_their_retention_and_take_their_tokens_along() {
    let auth = TestAuth::spawn().await;
    let expired = auth.customer("expired@example.com").await;
    auth.customer("revoked@example.com").await;
    auth.customer("recent@example.com").await;
    let live = auth.customer("live@example.com").await;
    let db = auth.db.pool().await;
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '2 days'
         WHERE user_id = (SELECT id FROM users WHERE email = 'expired@example.com')",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE sessions SET revoked_at = now() - interval '2 days', revoked_reason = 'logout'
         WHERE user_id = (SELECT id FROM users WHERE email = 'revoked@example.com')",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE sessions SET revoked_at = now() - interval '1 hour', revoked_reason = 'logout'
         WHERE user_id = (SELECT id FROM users WHERE email = 'recent@example.com')",
    )
    .execute(&db)
    .await
    .unwrap();
    let one_day = auth::settings::Retention::default();
    assert_eq!(one_day.retention_sessions, Duration::from_secs(24 * 3600));
    let now = OffsetDateTime::now_utc();

    let purged = auth::maintenance::purge_expired(&db, &one_day, now)
        .await
        .unwrap();
    assert_eq!(purged.sessions, 2);
    assert_eq!(
        sessions_of(&auth).await,
        ["live@example.com", "recent@example.com"]
    );
    assert_eq!(auth.count("refresh_tokens").await, 2);
    problem(
        refresh(&auth, &token(&expired, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // A day later the session revoked an hour ago has had its day; the live one has not ended.
    let purged =
        auth::maintenance::purge_expired(&db, &one_day, now + Duration::from_secs(24 * 3600))
            .await
            .unwrap();
    assert_eq!(purged.sessions, 1);
    assert_eq!(sessions_of(&auth).await, ["live@example.com"]);
    assert_eq!(
        refresh(&auth, &token(&live, "refresh_token"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn idle_login_counters_are_purged_after_their_retention_but_never_while_locked() {
    let auth = TestAuth::spawn().await;
    for email in ["idle@example.com", "locked@example.com"] {
        let r = auth
            .post(
                "/v1/auth/login",
                json!({"email": email, "password": "not the password at all"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let db = auth.db.pool().await;
    let counters = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT email FROM login_throttle_pairs ORDER BY email",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    assert_eq!(counters().await, ["idle@example.com", "locked@example.com"]);
    sqlx::query(
        "UPDATE login_throttle_pairs SET locked_until = now() + interval '3 days'
         WHERE email = 'locked@example.com'",
    )
    .execute(&db)
    .await
    .unwrap();
    let retention = auth::settings::Retention {
        retention_login_counters: Duration::from_secs(3600),
        ..Default::default()
    };
    let now = OffsetDateTime::now_utc();

    // Fresh: both stay.
    let purged = auth::maintenance::purge_expired(&db, &retention, now)
        .await
        .unwrap();
    assert_eq!(purged.throttles, 0);
    // Two hours on, the idle counter goes; the locked one stays until its lock has run out.
    let later = now + Duration::from_secs(2 * 3600);
    auth::maintenance::purge_expired(&db, &retention, later)
        .await
        .unwrap();
    assert_eq!(counters().await, ["locked@example.com"]);
    let after_the_lock = now + Duration::from_secs(4 * 24 * 3600);
    auth::maintenance::purge_expired(&db, &retention, after_the_lock)
        .await
        .unwrap();
    assert!(counters().await.is_empty());
}
