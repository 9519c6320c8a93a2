//! Expand/contract: the previous release keeps working on this release's schema (a rolling
//! upgrade runs both, and `helm rollback` runs the old pods on the new schema).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::TestDb;

/// The previous release's `record_failure` (56a4a3f, services/auth/src/store/throttle.rs),
/// statement for statement.
const PREVIOUS_RECORD_FAILURE: &str =
    "INSERT INTO login_throttle AS t (email, failures, locked_until)
     VALUES ($1, 1, CASE WHEN $2 <= 1 THEN now() + interval '1 second' END)
     ON CONFLICT (email) DO UPDATE SET
         failures = t.failures + 1,
         updated_at = now(),
         locked_until = CASE WHEN t.failures + 1 >= $2 THEN now() + least(
             interval '15 minutes',
             make_interval(secs => power(2.0, least(t.failures + 1 - $2, 10))::float8))
         END";
const PREVIOUS_CLEAR: &str = "DELETE FROM login_throttle WHERE email = $1";
const PREVIOUS_PURGE: &str =
    "DELETE FROM login_throttle WHERE updated_at < now() - interval '1 day'";
/// The previous release's `users::login_candidate`.
const PREVIOUS_LOGIN_CANDIDATE: &str = "SELECT u.id, u.password_hash, u.role, u.disabled,
        CASE WHEN t.locked_until > now() THEN t.locked_until END AS locked_until,
        t.email IS NOT NULL AS has_failures
 FROM (SELECT $1::text AS email) k
 LEFT JOIN users u ON u.email = k.email
 LEFT JOIN login_throttle t ON t.email = k.email";

#[tokio::test]
async fn the_previous_release_counts_failed_logins_on_the_migrated_schema() {
    let db = TestDb::new("auth_prev", &auth::MIGRATOR).await;
    let pool = db.pool().await;
    for _ in 0..3 {
        sqlx::query(PREVIOUS_RECORD_FAILURE)
            .bind("ann@example.com")
            .bind(3_i32)
            .execute(&pool)
            .await
            .unwrap();
    }
    let (failures, locked): (i32, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT failures, locked_until FROM login_throttle WHERE email = $1")
            .bind("ann@example.com")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failures, 3);
    assert!(locked.is_some());
    let row = sqlx::query(PREVIOUS_LOGIN_CANDIDATE)
        .bind("ann@example.com")
        .fetch_one(&pool)
        .await
        .unwrap();
    let lock: Option<time::OffsetDateTime> = sqlx::Row::get(&row, "locked_until");
    let has_failures: bool = sqlx::Row::get(&row, "has_failures");
    assert!(lock.is_some() && has_failures);
    sqlx::query(PREVIOUS_PURGE).execute(&pool).await.unwrap();
    sqlx::query(PREVIOUS_CLEAR)
        .bind("ann@example.com")
        .execute(&pool)
        .await
        .unwrap();

    // This release's counters are elsewhere and unaffected; its purge clears the old table too.
    auth::store::throttle::record_failure(
        &pool,
        "ann@example.com",
        "192.0.2.7".parse().unwrap(),
        3,
    )
    .await
    .unwrap();
    sqlx::query(PREVIOUS_RECORD_FAILURE)
        .bind("bob@example.com")
        .bind(3_i32)
        .execute(&pool)
        .await
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(2 * 86_400);
    let purged = auth::store::throttle::purge(&pool, later, std::time::Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(purged, 3, "one pair, one email counter, one old counter");
}

/// The per-address block keys an IPv6 client by its /64 (`platform::ratelimit::client_key`):
/// another address of the same /64 is still blocked, the next /64 is not.
#[tokio::test]
async fn an_ipv6_client_is_blocked_across_its_slash_64() {
    let db = TestDb::new("auth_v6", &auth::MIGRATOR).await;
    let pool = db.pool().await;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    auth::store::throttle::record_failure(&pool, "ann@example.com", ip("2001:db8:1:2::1"), 1)
        .await
        .unwrap();
    // Its 1 s lock, made long enough not to run out under a slow test machine.
    sqlx::query("UPDATE login_throttle_pairs SET locked_until = now() + interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let locked = |client: &'static str| {
        let pool = pool.clone();
        async move {
            auth::store::users::login_candidate(&pool, "ann@example.com", ip(client))
                .await
                .unwrap()
                .locked_until
                .is_some()
        }
    };
    assert!(locked("2001:db8:1:2::1").await);
    assert!(locked("2001:db8:1:2:dead:beef:0:7").await);
    assert!(!locked("2001:db8:1:3::1").await);
    assert!(!locked("198.51.100.7").await);
    // A success from any address of the /64 clears the pair.
    auth::store::throttle::clear(&pool, "ann@example.com", ip("2001:db8:1:2::99"))
        .await
        .unwrap();
    assert!(!locked("2001:db8:1:2::1").await);
}
