//! Public catalog reads from a streaming replica (`DATABASE_READ_URL`, `platform::replica`):
//! they answer what the primary would (every write is read back at once, on every replica of
//! the service), the replica is really read, and one that falls behind or goes away costs no
//! answer. Against a primary and hot standby of the test's own (`testkit::replication`), two
//! replicas of catalog-order on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use catalog_order::MIGRATOR;
use platform::config::Secret;
use serde_json::{Value, json};
use sqlx::{Connection, Executor};
use testkit::eventually;
use testkit::replication::StreamingPair;

use crate::support::Shop;

/// The catalog database on the pair's primary (the standby follows), and a shop of two replicas
/// reading from the standby.
async fn replicated_shop(pair: &StreamingPair, max_lag: Duration) -> (Shop, String) {
    let mut admin = sqlx::PgConnection::connect(&pair.primary_url("postgres"))
        .await
        .unwrap();
    admin.execute("CREATE DATABASE catalog").await.unwrap();
    let _ = admin.close().await;
    let pool = sqlx::PgPool::connect(&pair.primary_url("catalog"))
        .await
        .unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
    let (primary, standby) = (pair.primary_url("catalog"), pair.standby_url("catalog"));
    let mut shop = Shop::spawn_with(move |s| {
        s.database.database_url = Some(Secret::new(primary));
        s.replica.database_read_url = Some(Secret::new(standby));
        s.replica.database_read_max_lag = max_lag;
    })
    .await;
    let other = shop.add_replica().await;
    (shop, other)
}

const REPLICA_READS: &str = r#"db_reads_total{database="replica",service="catalog-order"}"#;

async fn get_json(shop: &Shop, base: &str, path: &str) -> Value {
    let r = shop
        .client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn patch(shop: &Shop, base: &str, admin: &str, item: &str, body: Value) {
    let r = shop
        .client
        .patch(format!("{base}/v1/items/{item}"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Reads of a key never asked before (so not cached) until one is answered by the replica.
async fn replica_serves(shop: &Shop, item: &str) -> bool {
    let n = AtomicUsize::new(0);
    eventually(Duration::from_secs(10), || async {
        let before = shop.metric(REPLICA_READS).await;
        let k = n.fetch_add(1, Ordering::Relaxed);
        get_json(shop, &shop.base, &format!("/v1/items/{item}?probe={k}")).await;
        shop.metric(REPLICA_READS).await > before
    })
    .await
}

#[tokio::test]
async fn catalog_reads_come_from_an_up_to_date_replica_and_every_write_is_read_back_at_once() {
    let pair = StreamingPair::start();
    let (shop, other) = replicated_shop(&pair, Duration::from_secs(1)).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let item = shop.item(&admin, &cat, "TEA-1", 100, 10).await;
    assert!(
        replica_serves(&shop, &item).await,
        "no read went to the replica"
    );

    // Each write, on either replica of the service, is read back at once where it was made —
    // page and list — and seen on the other within a second; never the value before it.
    let bases = [shop.base.clone(), other.clone()];
    for i in 1..=30_i64 {
        let (here, there) = (&bases[(i % 2) as usize], &bases[((i + 1) % 2) as usize]);
        patch(&shop, here, &admin, &item, json!({"price_cents": 100 + i})).await;
        let page = get_json(&shop, here, &format!("/v1/items/{item}")).await;
        assert_eq!(page["price_cents"], 100 + i, "write {i} read back");
        let list = get_json(&shop, here, &format!("/v1/items?category={cat}")).await;
        assert_eq!(list["items"][0]["price_cents"], 100 + i, "write {i} listed");
        let seen = eventually(Duration::from_secs(1), || async {
            get_json(&shop, there, &format!("/v1/items/{item}")).await["price_cents"] == 100 + i
        })
        .await;
        assert!(seen, "write {i} not seen on the other replica within 1 s");
    }
    // Once the replica has replayed the last write, reads go to it again.
    assert!(replica_serves(&shop, &item).await);
}

#[tokio::test]
async fn a_replica_that_falls_behind_is_read_only_within_its_bound_and_never_for_a_newer_write() {
    let max_lag = Duration::from_secs(1);
    let pair = StreamingPair::start();
    let (shop, other) = replicated_shop(&pair, max_lag).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let quiet = shop.item(&admin, &cat, "TEA-1", 100, 10).await;
    let busy = shop.item(&admin, &cat, "TEA-2", 200, 10).await;
    assert!(replica_serves(&shop, &quiet).await);

    // The replica stops replaying; the primary changes a name behind the service's back (no
    // change announced, as a proof that the replica is what answers).
    let standby = sqlx::PgPool::connect(&pair.standby_url("catalog"))
        .await
        .unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby)
        .await
        .unwrap();
    let paused = Instant::now();
    let primary = sqlx::PgPool::connect(&pair.primary_url("catalog"))
        .await
        .unwrap();
    sqlx::query("UPDATE items SET name = 'Renamed behind its back' WHERE id = $1::uuid")
        .bind(&quiet)
        .execute(&primary)
        .await
        .unwrap();
    let from_replica = get_json(&shop, &shop.base, &format!("/v1/items/{quiet}?n=1")).await;
    if paused.elapsed() < max_lag / 2 {
        assert_eq!(
            from_replica["name"], "Item TEA-1",
            "within its bound the replica answers reads of what did not change"
        );
    }

    // A write through the service is read back at once on both of its replicas: the paused
    // replica never has it, so those reads go to the primary.
    for i in 1..=5_i64 {
        let here = if i % 2 == 0 { &shop.base } else { &other };
        patch(&shop, here, &admin, &busy, json!({"price_cents": 200 + i})).await;
        let page = get_json(&shop, here, &format!("/v1/items/{busy}")).await;
        assert_eq!(page["price_cents"], 200 + i);
    }

    // Past the bound nothing is read from it: the change made behind its back is seen.
    tokio::time::sleep(max_lag + Duration::from_millis(300)).await;
    let before = shop.metric(REPLICA_READS).await;
    let from_primary = get_json(&shop, &shop.base, &format!("/v1/items/{quiet}?n=2")).await;
    assert_eq!(from_primary["name"], "Renamed behind its back");
    assert_eq!(shop.metric(REPLICA_READS).await, before);
    assert!(
        shop.metric(r#"db_replica_lag_seconds{service="catalog-order"}"#)
            .await
            > max_lag.as_secs_f64()
    );

    // Replaying again, it catches up and is read again, with what the primary has.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&standby)
        .await
        .unwrap();
    assert!(replica_serves(&shop, &quiet).await);
    let caught_up = get_json(&shop, &shop.base, &format!("/v1/items/{quiet}?n=3")).await;
    assert_eq!(caught_up["name"], "Renamed behind its back");
}

#[tokio::test]
async fn a_replica_that_goes_away_costs_no_answer() {
    let pair = Arc::new(StreamingPair::start());
    let (shop, other) = replicated_shop(&pair, Duration::from_secs(1)).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let item = shop.item(&admin, &cat, "TEA-1", 100, 10).await;
    assert!(replica_serves(&shop, &item).await);

    // Readers on both replicas of the service, every read a new key (so none is cached), while
    // the standby is killed.
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Instant::now() + Duration::from_secs(4);
    let mut readers = Vec::new();
    for r in 0..4 {
        let base = if r % 2 == 0 {
            shop.base.clone()
        } else {
            other.clone()
        };
        let (client, item, cat) = (shop.client.clone(), item.clone(), cat.clone());
        let (answered, failed) = (answered.clone(), failed.clone());
        readers.push(tokio::spawn(async move {
            let mut k = 0;
            while Instant::now() < stop {
                k += 1;
                let path = if k % 2 == 0 {
                    format!("/v1/items/{item}?reader={r}&k={k}")
                } else {
                    format!("/v1/items?category={cat}&limit={}", 1 + k % 50)
                };
                match client.get(format!("{base}{path}")).send().await {
                    Ok(resp) if resp.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{path}: {}", resp.status())),
                    Err(e) => failed.lock().unwrap().push(format!("{path}: {e}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = pair.clone();
    tokio::task::spawn_blocking(move || killed.stop_standby())
        .await
        .unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "reads failed: {failed:?}");
    assert!(answered.load(Ordering::Relaxed) > 100);
    println!(
        "{} reads answered, {} retried on the primary after the replica failed them",
        answered.load(Ordering::Relaxed),
        shop.metric(r#"db_replica_fallbacks_total{service="catalog-order"}"#)
            .await
    );

    // Back, it is read again.
    let restarted = pair.clone();
    tokio::task::spawn_blocking(move || restarted.start_standby())
        .await
        .unwrap();
    assert!(replica_serves(&shop, &item).await);
}
