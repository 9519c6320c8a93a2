//! Faults: NATS restarting while orders keep coming loses no job and applies none twice.

use std::time::Duration;

use crate::support::Shop;
use platform::config::Secret;
use reqwest::StatusCode;
use serde_json::json;
use testkit::{OwnNats, eventually};

#[tokio::test]
async fn a_nats_restart_during_a_burst_of_orders_loses_nothing() {
    let mut nats = OwnNats::start().await;
    let url = nats.url();
    let mut shop = Shop::spawn_with(move |s| s.nats.nats_url = Some(Secret::new(url))).await;
    let worker_metrics = shop.add_worker().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "A-1", 100, 1000).await;
    let ann = shop.customer("ann@example.com").await;

    for n in 0..30 {
        if n == 10 {
            nats.stop().await;
        }
        if n == 20 {
            nats.restart().await;
        }
        // Orders do not need NATS: the jobs wait in the outbox.
        let r = shop
            .post(
                "/v1/orders",
                &ann,
                json!({"lines": [{"item_id": item, "quantity": 1}]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "order {n}");
    }

    let db = shop.db.pool().await;
    let all_done = eventually(Duration::from_secs(60), || {
        let db = db.clone();
        async move {
            let (jobs, succeeded): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM jobs",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            jobs == 30 && succeeded == 30
        }
    })
    .await;
    let (published, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT count(published_at), count(*) FILTER (WHERE status = 'succeeded') FROM jobs",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        all_done,
        "published {published}, succeeded {succeeded} of 30"
    );
    // Each e-mail sent exactly once.
    let metrics = testkit::get(&worker_metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"jobs_processed_total{kind="email.order_confirmation",outcome="succeeded",service="worker"} 30"#),
        "{metrics}"
    );
}
