//! The response cache and HTTP caching of the public catalog reads (docs/design.md, "Caching"):
//! ETags and 304s without database work, personal answers never cached, a write seen on every
//! replica within a second, and no stale catalog while NATS is away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::Shop;
use platform::config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{OwnNats, eventually};

const PUBLIC: &str = "public, max-age=5, stale-while-revalidate=30";

/// GET `url` with `If-None-Match: etag` (when given): status, ETag, Cache-Control, body.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
) -> (StatusCode, String, String, String) {
    fetch_as(client, Method::GET, url, etag).await
}

/// [`fetch`] with another method (HEAD).
async fn fetch_as(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    etag: Option<&str>,
) -> (StatusCode, String, String, String) {
    let mut req = client.request(method, url);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (etag, control) = (header("etag"), header("cache-control"));
    (r.status(), etag, control, r.text().await.unwrap())
}

async fn price(client: &reqwest::Client, base: &str, item: &str) -> i64 {
    let (status, _, _, body) = fetch(client, &format!("{base}/v1/items/{item}"), None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["price_cents"]
        .as_i64()
        .unwrap()
}

async fn set_price(shop: &Shop, admin: &str, item: &str, cents: i64) {
    let path = format!("/v1/items/{item}");
    let r = shop
        .send(Method::PATCH, &path, admin, json!({"price_cents": cents}))
        .await;
    assert_eq!(r.status(), 200);
}

/// The price of `item` as the category's list shows it.
async fn listed_price(client: &reqwest::Client, base: &str, category: &str, item: &str) -> i64 {
    let url = format!("{base}/v1/items?category={category}&sort=price");
    let (status, _, _, body) = fetch(client, &url, None).await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == item)
        .and_then(|i| i["price_cents"].as_i64())
        .unwrap_or(-1)
}

#[tokio::test]
async fn public_reads_carry_a_strong_etag_and_revalidate_with_304_without_the_database() {
    // Counting statements needs every answer below to stay cached, even if this test is starved
    // of CPU for a while: a silence of CACHE_OFFLINE_TTL would rightly expire them.
    let (shop, counter) = Shop::spawn_counting_statements_with(|s| {
        s.cache.cache_offline_ttl = Duration::from_secs(30)
    })
    .await;
    let catalog_statements = || {
        counter.executed(|sql| {
            ["items", "categories", "item_images"]
                .iter()
                .any(|t| sql.contains(t))
        })
    };
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let item = shop.item(&admin, &cat, "TEA-1", 450, 10).await;
    let c = &shop.client;

    let reads = [
        format!("/v1/items/{item}"),
        format!("/v1/items?category={cat}&sort=price"),
        "/v1/items?category=tea&q=item".to_owned(),
        "/v1/items/facets?q=item".to_owned(),
        "/v1/categories".to_owned(),
        format!("/v1/categories/{cat}"),
        format!("/v1/items/{item}/images"),
    ];
    let counted = || async {
        let mut counts = [0.0; 3];
        for (n, result) in counts.iter_mut().zip(["hit", "miss", "stale"]) {
            *n = shop
                .metric(&format!(
                    r#"response_cache_requests_total{{result="{result}",service="catalog-order"}}"#
                ))
                .await;
        }
        counts
    };
    let before = counted().await;
    let mut etags = Vec::new();
    for path in &reads {
        let (status, etag, control, body) = fetch(c, &shop.url(path), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(control, PUBLIC, "{path}");
        assert!(
            etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'),
            "{path}: a strong ETag, got {etag:?}"
        );
        etags.push(etag);
    }

    // Each was a miss, counted once; then every read of them a hit.
    let [hits, misses, stale] = counted().await;
    assert_eq!(
        [hits, misses, stale],
        [before[0], before[1] + 7.0, before[2]]
    );

    // Revalidation and repeated reads are answered from memory: not one catalog statement.
    let before = catalog_statements();
    for (path, etag) in reads.iter().zip(&etags) {
        let (status, again, control, body) = fetch(c, &shop.url(path), Some(etag)).await;
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty(), "{path}: a 304 has no body");
        assert_eq!((&again, control.as_str()), (etag, PUBLIC), "{path}");
        // The weak comparison If-None-Match asks for, and lists of tags.
        let weak = format!("\"other\", W/{etag}");
        assert_eq!(fetch(c, &shop.url(path), Some(&weak)).await.0, 304);
        let (status, same, _, _) = fetch(c, &shop.url(path), Some("\"other\"")).await;
        assert_eq!((status, &same), (StatusCode::OK, etag), "{path}");
        // HEAD is GET without the body (RFC 9110): the same headers, and a 304 alike.
        let head = fetch_as(c, Method::HEAD, &shop.url(path), None).await;
        assert_eq!(
            head,
            (StatusCode::OK, etag.clone(), PUBLIC.into(), "".into())
        );
        let head = fetch_as(c, Method::HEAD, &shop.url(path), Some(etag)).await;
        assert_eq!(head.0, 304, "{path}");
    }
    assert_eq!(
        catalog_statements(),
        before,
        "cached reads went to the database"
    );
    // Five reads of each of the seven (two 304s and a 200, two HEADs).
    assert_eq!(counted().await, [hits + 35.0, misses, stale]);

    // A HEAD that misses keeps the GET's answer: its ETag validates the GET.
    let path = shop.url(&format!("/v1/items?category={cat}"));
    let (status, etag, control, body) = fetch_as(c, Method::HEAD, &path, None).await;
    assert_eq!(
        (status, control.as_str(), body.as_str()),
        (StatusCode::OK, PUBLIC, "")
    );
    assert_eq!(fetch(c, &path, Some(&etag)).await.0, 304);
    assert_eq!(counted().await, [hits + 36.0, misses + 1.0, stale]);

    // What the database says but no write announced stays unseen: proof the answers above came
    // from memory. (Only writes through the service are announced; see docs/operations.md.)
    sqlx::query("UPDATE items SET price_cents = 999 WHERE sku = 'TEA-1'")
        .execute(&shop.db.pool().await)
        .await
        .unwrap();
    assert_eq!(price(c, &shop.base, &item).await, 450);

    // A write through the service is announced: the next read is fresh, with a new ETag, and
    // the old ETag no longer matches.
    let r = shop
        .send(
            Method::PATCH,
            &format!("/v1/items/{item}"),
            &admin,
            json!({"name": "Green tea"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, etag, _, body) = fetch(c, &shop.url(&reads[0]), Some(&etags[0])).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(etag, etags[0]);
    let fresh: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (fresh["name"].as_str(), fresh["price_cents"].as_i64()),
        (Some("Green tea"), Some(999))
    );
    assert_eq!(listed_price(c, &shop.base, &cat, &item).await, 999);
    // The category list did not depend on the item: still the same answer.
    assert_eq!(
        fetch(c, &shop.url("/v1/categories"), Some(&etags[4]))
            .await
            .0,
        304
    );

    // Personal answers and errors are never for a shared cache.
    let ann = shop.customer("ann@example.com").await;
    for path in ["/v1/customers/me", "/v1/orders"] {
        let r = shop.get(path, Some(&ann)).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "private, no-store", "{path}");
        assert!(r.headers().get("etag").is_none(), "{path}");
    }
    // They are not requests to the cache either: no hit, miss or stale counted.
    let after_writes = counted().await;
    for path in ["/v1/customers/me", "/v1/orders"] {
        assert_eq!(shop.get(path, Some(&ann)).await.status(), 200);
    }
    assert_eq!(counted().await, after_writes);
    let missing = shop
        .get(&format!("/v1/items/{}", uuid::Uuid::now_v7()), None)
        .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["cache-control"], "private, no-store");
}

#[tokio::test]
async fn a_write_on_one_replica_is_seen_on_every_replica_within_a_second_through_a_write_storm() {
    let mut shop = Shop::spawn().await;
    let other = shop.add_replica().await;
    let bases = [shop.base.clone(), other];
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(shop.item(&admin, &cat, &format!("TEA-{i}"), 100, 10).await);
    }
    let c = shop.client.clone();

    // Readers keep both replicas' caches hot all along, so a missed invalidation would be served.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for base in &bases {
        for item in &items {
            let (c, base, item, cat, stop) = (
                c.clone(),
                base.clone(),
                item.clone(),
                cat.clone(),
                stop.clone(),
            );
            readers.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    price(&c, &base, &item).await;
                    listed_price(&c, &base, &cat, &item).await;
                }
            }));
        }
    }

    // The storm: four writers, one per item, alternating replicas; after each write, both
    // replicas must show it, page and list, within a second of the write's answer.
    let mut writers = Vec::new();
    for (w, item) in items.iter().enumerate() {
        let (c, bases, item, cat, admin) = (
            c.clone(),
            bases.clone(),
            item.clone(),
            cat.clone(),
            admin.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for n in 1..=15_i64 {
                let price_cents = 1000 * (w as i64 + 1) + n;
                let r = c
                    .patch(format!("{}/v1/items/{item}", bases[(n as usize + w) % 2]))
                    .bearer_auth(&admin)
                    .json(&json!({"price_cents": price_cents}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let committed = Instant::now();
                let seen = futures_util::future::join_all(bases.iter().map(|base| {
                    let (c, item, cat) = (&c, &item, &cat);
                    async move {
                        let seen = eventually(Duration::from_secs(1), || async {
                            price(c, base, item).await == price_cents
                                && listed_price(c, base, cat, item).await == price_cents
                        })
                        .await;
                        assert!(seen, "{base} did not show {price_cents} within 1 s");
                        committed.elapsed()
                    }
                }))
                .await;
                slowest = seen.into_iter().fold(slowest, Duration::max);
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for w in writers {
        slowest = slowest.max(w.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    println!("slowest write to be seen on both replicas: {slowest:?}");
}

#[tokio::test]
async fn while_nats_is_away_no_replica_serves_a_cached_entry_older_than_the_offline_bound() {
    let mut nats = OwnNats::start().await;
    let url = nats.url();
    let mut shop = Shop::spawn_with(move |s| {
        s.nats.nats_url = Some(Secret::new(url));
        s.cache.cache_offline_ttl = Duration::from_millis(500);
    })
    .await;
    let other = shop.add_replica().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "tea").await;
    let item = shop.item(&admin, &cat, "TEA-1", 100, 10).await;
    let c = shop.client.clone();
    assert_eq!(price(&c, &other, &item).await, 100);

    // The other replica caches; its NATS goes away; a write on the first cannot be announced.
    nats.stop().await;
    set_price(&shop, &admin, &item, 200).await;
    let written = Instant::now();
    let seen = eventually(Duration::from_secs(3), || async {
        price(&c, &other, &item).await == 200
    })
    .await;
    assert!(seen, "the other replica kept serving its cached entry");
    // Entries were cached until the bound (500 ms) was passed, not beyond.
    assert!(
        written.elapsed() < Duration::from_millis(1500),
        "{:?}",
        written.elapsed()
    );

    // NATS back: once both replicas are connected again, a change reaches the other one well
    // inside the offline bound, so over NATS and not by expiry.
    nats.restart().await;
    for base in [&shop.base, &other] {
        let ready = eventually(Duration::from_secs(15), || async {
            c.get(format!("{base}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready, "{base} did not reconnect");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(price(&c, &other, &item).await, 200);
    set_price(&shop, &admin, &item, 300).await;
    assert!(
        eventually(Duration::from_millis(300), || async {
            price(&c, &other, &item).await == 300
        })
        .await,
        "the change did not arrive over NATS after its restart"
    );
}
