//! Deleting accounts: the last admin is kept, a wrong password counts as a failed login, and
//! published events are purged after their retention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, TestAuth, problem, token};

async fn delete_me(auth: &TestAuth, pair: &Value, password: &str) -> Response {
    auth.client
        .delete(auth.url("/v1/auth/me"))
        .bearer_auth(token(pair, "access_token"))
        .json(&json!({ "password": password }))
        .send()
        .await
        .unwrap()
}

async fn delete_user(auth: &TestAuth, admin: &Value, id: &str) -> Response {
    auth.client
        .delete(auth.url(&format!("/v1/auth/users/{id}")))
        .bearer_auth(token(admin, "access_token"))
        .send()
        .await
        .unwrap()
}

async fn id_of(auth: &TestAuth, email: &str) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&auth.db.pool().await)
        .await
        .unwrap()
        .to_string()
}

async fn admins(auth: &TestAuth) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(&auth.db.pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_last_admin_cannot_delete_themselves() {
    let auth = TestAuth::spawn().await;
    let ann = auth.admin("ann@example.com").await;
    let body = problem(delete_me(&auth, &ann, PASSWORD).await, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("last admin"),
        "{body}"
    );
    assert_eq!(auth.me(&token(&ann, "access_token")).await.status(), 200);
    assert_eq!(auth.count("event_outbox").await, 0);

    // With a second admin, one of them may go; then the other is the last.
    let bob = auth.admin("bob@example.com").await;
    assert_eq!(delete_me(&auth, &ann, PASSWORD).await.status(), 204);
    problem(delete_me(&auth, &bob, PASSWORD).await, StatusCode::CONFLICT).await;
    assert_eq!(admins(&auth).await, 1);
    // A disabled admin manages nothing: it does not count as the other one.
    let cid = auth.admin("cid@example.com").await;
    sqlx::query("UPDATE users SET disabled = true WHERE email = 'cid@example.com'")
        .execute(&auth.db.pool().await)
        .await
        .unwrap();
    problem(delete_me(&auth, &bob, PASSWORD).await, StatusCode::CONFLICT).await;
    // … and may itself be deleted by the remaining admin.
    let cid_id = id_of(&auth, "cid@example.com").await;
    assert_eq!(delete_user(&auth, &bob, &cid_id).await.status(), 204);
    drop(cid);
    // Customers are not concerned.
    let dan = auth.customer("dan@example.com").await;
    assert_eq!(delete_me(&auth, &dan, PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn of_two_admins_deleting_themselves_or_each_other_at_once_exactly_one_goes() {
    let auth = TestAuth::spawn().await;
    // Themselves.
    let ann = auth.admin("ann@example.com").await;
    let bob = auth.admin("bob@example.com").await;
    let (a, b) = tokio::join!(
        delete_me(&auth, &ann, PASSWORD),
        delete_me(&auth, &bob, PASSWORD)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::CONFLICT]);
    assert_eq!(admins(&auth).await, 1);
    assert_eq!(auth.count("event_outbox").await, 1);

    // Each other (the survivor and a new admin).
    let survivor: String = sqlx::query_scalar("SELECT email FROM users WHERE role = 'admin'")
        .fetch_one(&auth.db.pool().await)
        .await
        .unwrap();
    let first = auth.login(&survivor).await;
    let cid = auth.admin("cid@example.com").await;
    let first_id = id_of(&auth, &survivor).await;
    let cid_id = id_of(&auth, "cid@example.com").await;
    let (a, b) = tokio::join!(
        delete_user(&auth, &first, &cid_id),
        delete_user(&auth, &cid, &first_id)
    );
    let statuses = [a.status(), b.status()];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{statuses:?}"
    );
    // The other is refused as the last admin, or already signed out by the deletion.
    assert!(
        statuses.iter().all(|s| [
            StatusCode::NO_CONTENT,
            StatusCode::CONFLICT,
            StatusCode::UNAUTHORIZED
        ]
        .contains(s)),
        "{statuses:?}"
    );
    assert_eq!(admins(&auth).await, 1);
    assert_eq!(auth.count("event_outbox").await, 2);
}

#[tokio::test]
async fn a_wrong_password_on_deletion_is_a_failed_login_and_the_block_applies() {
    let auth = TestAuth::spawn_with(|s| s.auth.login_max_failures = 2).await;
    let ann = auth.customer("ann@example.com").await;
    for _ in 0..2 {
        problem(
            delete_me(&auth, &ann, "not the password at all").await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let db = auth.db.pool().await;
    let failures: i32 = sqlx::query_scalar(
        "SELECT failures FROM login_account_failures WHERE email = 'ann@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(failures, 2);
    // This address is now blocked for this email: deletion and login alike, whatever the
    // password, and nothing is deleted.
    let r = delete_me(&auth, &ann, PASSWORD).await;
    assert!(r.headers().contains_key("retry-after"));
    problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    let r = auth
        .post(
            "/v1/auth/login",
            json!({"email": "ann@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(auth.me(&token(&ann, "access_token")).await.status(), 200);
    assert_eq!(auth.count("event_outbox").await, 0);

    // Once the block has run out, the right password deletes the account and its counters.
    sqlx::query("UPDATE login_throttle_pairs SET locked_until = now() - interval '1 second'")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(delete_me(&auth, &ann, PASSWORD).await.status(), 204);
    assert_eq!(auth.count("login_throttle_pairs").await, 0);
    assert_eq!(auth.count("login_account_failures").await, 0);
}

#[tokio::test]
async fn published_events_are_purged_after_their_retention_unpublished_ones_never() {
    use std::time::Duration;
    // No app: its relay would publish the unpublished row.
    let test_db = testkit::TestDb::new("auth", &auth::MIGRATOR).await;
    let db = test_db.pool().await;
    let all = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_outbox")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    sqlx::query(
        "INSERT INTO event_outbox (id, kind, payload, created_at, published_at) VALUES
         (gen_random_uuid(), 'account.deleted', '{}', now() - interval '30 days', NULL),
         (gen_random_uuid(), 'account.deleted', '{}', now() - interval '10 days',
          now() - interval '10 days'),
         (gen_random_uuid(), 'account.deleted', '{}', now() - interval '2 days',
          now() - interval '2 days')",
    )
    .execute(&db)
    .await
    .unwrap();
    let week = auth::settings::Retention::default();
    assert_eq!(
        week.retention_events_outbox,
        Duration::from_secs(7 * 24 * 3600)
    );
    let kept = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM event_outbox WHERE published_at IS NOT NULL",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let now = time::OffsetDateTime::now_utc();
    let purged = auth::maintenance::purge_expired(&db, &week, now)
        .await
        .unwrap();
    assert_eq!(purged.events, 1);
    assert_eq!(kept().await, 1);
    // Six days on, the event published two days ago has had its week; the unpublished one stays.
    let later = now + Duration::from_secs(6 * 24 * 3600);
    let purged = auth::maintenance::purge_expired(&db, &week, later)
        .await
        .unwrap();
    assert_eq!(purged.events, 1);
    assert_eq!(kept().await, 0);
    assert_eq!(all().await, 1);
    let purged =
        auth::maintenance::purge_expired(&db, &week, later + Duration::from_secs(365 * 24 * 3600))
            .await
            .unwrap();
    assert_eq!(purged.events, 0);
    assert_eq!(all().await, 1);
}

#[tokio::test]
async fn expired_account_tokens_and_idle_reset_counters_are_purged_after_the_session_retention() {
    use std::time::Duration;
    let test_db = testkit::TestDb::new("auth", &auth::MIGRATOR).await;
    let db = test_db.pool().await;
    sqlx::query(
        "WITH u AS (
             INSERT INTO users (id, email, password_hash, role)
             VALUES (gen_random_uuid(), 'ann@example.com', 'x', 'customer') RETURNING id
         )
         INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
         SELECT decode(repeat(h, 64), 'hex'), u.id, 'reset_password', 'ann@example.com', e
         FROM u, (VALUES ('a', now() - interval '3 days'), ('b', now() - interval '2 hours'),
                         ('c', now() + interval '20 minutes')) AS t (h, e)",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO password_reset_requests (email, requests, window_start) VALUES
         ('old@example.com', 1, now() - interval '3 days'),
         ('edge@example.com', 1, now() - interval '1 day 30 minutes'),
         ('new@example.com', 1, now())",
    )
    .execute(&db)
    .await
    .unwrap();
    let retention = auth::settings::Retention::default();
    assert_eq!(retention.retention_sessions, Duration::from_secs(24 * 3600));
    let purged = auth::maintenance::purge_expired(&db, &retention, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    // The token expired three days ago and the counter whose hour ended over a day ago go; the
    // counter whose hour ended under a day ago, the recently expired and the live token stay.
    assert_eq!(purged.account_tokens, 2);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT email FROM password_reset_requests ORDER BY email")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(left, ["edge@example.com", "new@example.com"]);
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM account_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tokens, 2);
}
