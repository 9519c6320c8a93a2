//! The shared rate limit against a real PostgreSQL: several replicas (each with its own pool)
//! draw from one budget per key, a restart resets nothing, keys are apart, the store being down
//! lets requests through, and spent keys are purged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use platform::metrics::Metrics;
use platform::ratelimit::{self, Decision, Limiter, Quota, TABLE_DDL};
use sqlx::PgPool;
use testkit::TestDb;

/// One request a minute refills nothing during a test: the budget is the burst.
const QUOTA: Quota = Quota {
    per_minute: 1,
    burst: 10,
};

async fn database() -> (TestDb, PgPool) {
    let db = TestDb::empty("ratelimit").await;
    let pool = db.pool().await;
    sqlx::query(TABLE_DDL).execute(&pool).await.unwrap();
    (db, pool)
}

/// A "replica": its own pool and metrics, the same database.
async fn replica(db: &TestDb) -> (Limiter, Metrics) {
    let metrics = Metrics::new("test", "0").unwrap();
    let limiter = Limiter::new(db.pool().await, "auth", QUOTA, &metrics).unwrap();
    (limiter, metrics)
}

#[tokio::test]
async fn three_replicas_hammering_at_once_let_exactly_the_burst_through() {
    let (db, _pool) = database().await;
    let replicas = [replica(&db).await, replica(&db).await, replica(&db).await];
    // Several rounds, each a fresh key: a refusal racing the insert of its key's row is the
    // case whose Retry-After once came out as 1 s.
    for round in 0..8 {
        let key = format!("198.51.100.{}", 7 + round * 10);
        let attempts = replicas.iter().cycle().take(60).map(|(limiter, _)| {
            let (limiter, key) = (limiter.clone(), key.clone());
            async move { limiter.decide(&key).await.unwrap() }
        });
        let decisions = futures_util::future::join_all(attempts).await;
        let allowed = decisions
            .iter()
            .filter(|d| **d == Decision::Allowed)
            .count();
        assert_eq!(allowed, QUOTA.burst as usize);
        // The refusals say when one request fits again: one period (60 s) after the burst was
        // spent.
        for decision in decisions {
            if let Decision::Refused { retry_after } = decision {
                assert!(
                    (Duration::from_secs(55)..=Duration::from_secs(61)).contains(&retry_after),
                    "round {round}: {retry_after:?}"
                );
            }
        }
    }
    // Another client has its own budget.
    assert_eq!(
        replicas[1].0.decide("198.51.100.8").await.unwrap(),
        Decision::Allowed
    );
    // A limiter started afterwards (a restarted replica) knows the spent budget.
    let (restarted, metrics) = replica(&db).await;
    let refused = restarted.check("198.51.100.7").await.unwrap_err();
    assert!(matches!(
        refused,
        platform::ApiError::TooManyRequests { .. }
    ));
    assert!(
        metrics
            .render()
            .contains(r#"rate_limited_total{scope="auth",service="test"} 1"#)
    );
    // Scopes never share a key.
    let metrics = Metrics::new("test", "0").unwrap();
    let writes = Limiter::new(db.pool().await, "write", QUOTA, &metrics).unwrap();
    assert_eq!(
        writes.decide("198.51.100.7").await.unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn a_limit_refills_at_its_rate() {
    let (db, pool) = database().await;
    let metrics = Metrics::new("test", "0").unwrap();
    // 60 a minute: one request a second, bursts of 2.
    let quota = Quota {
        per_minute: 60,
        burst: 2,
    };
    let limiter = Limiter::new(pool, "auth", quota, &metrics).unwrap();
    for _ in 0..2 {
        assert_eq!(limiter.decide("k").await.unwrap(), Decision::Allowed);
    }
    assert!(matches!(
        limiter.decide("k").await.unwrap(),
        Decision::Refused { retry_after } if retry_after == Duration::from_secs(1)
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(limiter.decide("k").await.unwrap(), Decision::Allowed);
    drop(db);
}

#[tokio::test]
async fn spent_keys_are_purged_and_live_ones_kept() {
    let (_db, pool) = database().await;
    sqlx::query(
        "INSERT INTO rate_limits (key, tat) VALUES
           ('auth:old', now() - interval '1 second'), ('auth:live', now() + interval '1 minute')",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(ratelimit::purge(&pool).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["auth:live"]);
}

#[tokio::test]
async fn an_unreachable_store_lets_requests_through_and_says_so() {
    let metrics = Metrics::new("test", "0").unwrap();
    // Nothing listens on port 1; the pool gives up quickly.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let limiter = Limiter::new(pool, "write", QUOTA, &metrics).unwrap();
    for _ in 0..2 {
        assert!(limiter.check("user").await.is_ok());
    }
    let text = metrics.render();
    assert!(
        text.contains(r#"rate_limit_unavailable_total{scope="write",service="test"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"rate_limited_total{scope="write",service="test"} 0"#));
}
