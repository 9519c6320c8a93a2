//! Job paths that cross services: scheduled maintenance run by the service owning the data, the
//! order e-mail over real SMTP exactly once, and no job lost when NATS restarts mid-burst;
//! (`status`) a job's status only moving forward; (`replay`) a dead job replayed from the DLQ
//! ending succeeded; (`retention`) what the purges delete and keep; (`anonymise`) a deleted
//! account's customer forgotten once, and nothing written for it afterwards; and
//! (`account_consumer`) `account.deleted` reaching a new release although an old one dropped it.

mod account_consumer;
mod anonymise;
mod replay;
mod retention;
mod status;

use std::time::{Duration, SystemTime};

use crate::support::Shop;
use async_nats::jetstream;
use jobs::Topology;
use jobs::maintenance::{AuthJob, CatalogJob};
use jobs::schedule::{Entry, publish_slot};
use platform::config::Secret;
use platform::nats::Namespace;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{OwnNats, SmtpSink, eventually};

async fn jetstream_at(url: &str, namespace: &str) -> (jetstream::Context, Topology) {
    let client = async_nats::connect(url).await.unwrap();
    (
        jetstream::new(client),
        Topology::new(Namespace::new(namespace).unwrap()),
    )
}

async fn order(shop: &Shop, token: &str, item: &str, quantity: u32) -> Value {
    let r = shop
        .post(
            "/v1/orders",
            token,
            json!({"lines": [{"item_id": item, "quantity": quantity}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn order_status(shop: &Shop, token: &str, id: &str) -> String {
    let o: Value = shop
        .get(&format!("/v1/orders/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    o["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_scheduled_expiry_cancels_unpaid_orders_past_their_window_and_restocks() {
    let shop = Shop::spawn().await;
    let (js, topology) = jetstream_at(&testkit::nats_url(), &shop.namespace).await;
    let admin = shop.admin("admin@example.com").await;
    let ann = shop.customer("ann@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "EXP-1", 100, 5).await;
    let old = order(&shop, &ann, &item, 2).await;
    let fresh = order(&shop, &ann, &item, 1).await;
    let paid = order(&shop, &ann, &item, 1).await;
    let set = shop
        .post(
            &format!("/v1/orders/{}/status", paid["id"].as_str().unwrap()),
            &admin,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_eq!(shop.stock(&item).await, 1);
    // Placed two hours ago: past the default 30-minute window (and so is the paid one).
    sqlx::query(
        "UPDATE orders SET created_at = now() - interval '2 hours' WHERE id = ANY($1::uuid[])",
    )
    .bind(vec![
        old["id"].as_str().unwrap().to_owned(),
        paid["id"].as_str().unwrap().to_owned(),
    ])
    .execute(&shop.db.pool().await)
    .await
    .unwrap();

    let entry = Entry {
        kind: CatalogJob::ExpireOrders.kind(),
        every: Duration::from_secs(3600),
    };
    assert!(
        publish_slot(&js, &topology, &entry, SystemTime::now())
            .await
            .unwrap()
    );
    let old_id = old["id"].as_str().unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            order_status(&shop, &ann, old_id).await == "cancelled"
        })
        .await,
        "the unpaid order was not expired"
    );
    assert_eq!(shop.stock(&item).await, 3, "its two units are back");
    assert_eq!(
        order_status(&shop, &ann, fresh["id"].as_str().unwrap()).await,
        "pending"
    );
    assert_eq!(
        order_status(&shop, &ann, paid["id"].as_str().unwrap()).await,
        "paid"
    );
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn the_scheduled_session_purge_runs_in_auth() {
    let shop = Shop::spawn().await;
    let (js, topology) = jetstream_at(&testkit::nats_url(), &shop.namespace).await;
    shop.customer("ann@example.com").await;
    shop.customer("bob@example.com").await;
    let auth_db = shop.auth_db.pool().await;
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions")
            .fetch_one(&auth_db)
            .await
            .unwrap()
    };
    assert_eq!(sessions().await, 2);
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '3 days'
         WHERE user_id = (SELECT id FROM users WHERE email = 'ann@example.com')",
    )
    .execute(&auth_db)
    .await
    .unwrap();
    let entry = Entry {
        kind: AuthJob::PurgeSessions.kind(),
        every: Duration::from_secs(3600),
    };
    publish_slot(&js, &topology, &entry, SystemTime::now())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async { sessions().await == 1 }).await,
        "the expired session was not purged"
    );
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn the_workers_scheduler_has_each_service_purge_what_is_past_its_retention() {
    let mut shop = Shop::spawn().await;
    shop.customer("ann@example.com").await;
    shop.customer("bob@example.com").await;
    let db = shop.db.pool().await;
    let auth_db = shop.auth_db.pool().await;
    // catalog-order: a job that finished 40 days ago (past the default 30d) and one running as
    // long; an event applied 10 days ago (past 7d) and one just now; an idempotency key two days
    // old (past 1d) and a fresh one.
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, updated_at, published_at) VALUES
             ('00000000-0000-0000-0000-00000000000f', 'email.order_confirmation', '{}',
              'succeeded', now() - interval '40 days', now() - interval '40 days'),
             ('00000000-0000-0000-0000-00000000000a', 'email.order_confirmation', '{}',
              'running', now() - interval '40 days', now() - interval '40 days')",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_event_inbox (event_id, received_at) VALUES
             ('00000000-0000-0000-0000-00000000000f', now() - interval '10 days'),
             ('00000000-0000-0000-0000-00000000000a', now())",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) VALUES
             (gen_random_uuid(), 'old', '\\x00', now() - interval '2 days'),
             (gen_random_uuid(), 'fresh', '\\x00', now())",
    )
    .execute(&db)
    .await
    .unwrap();
    // auth: ann's session expired three days ago (past the default 1d), bob's is live.
    sqlx::query(
        "UPDATE sessions SET expires_at = now() - interval '3 days'
         WHERE user_id = (SELECT id FROM users WHERE email = 'ann@example.com')",
    )
    .execute(&auth_db)
    .await
    .unwrap();
    let left = |sql: &'static str, db: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>(sql)
            .fetch_all(&db)
            .await
            .unwrap()
    };
    let ids = |n: &str| vec![format!("00000000-0000-0000-0000-00000000000{n}")];

    // The worker's own scheduler (not a hand-published job): the first tick publishes every entry.
    shop.add_worker_with(|w| w.scheduler_enabled = true).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            left("SELECT id::text FROM jobs", db.clone()).await == ids("a")
                // (the scheduled jobs' own status events arrive meanwhile)
                && left(
                    "SELECT event_id::text FROM job_event_inbox
                     WHERE event_id::text LIKE '00000000-%'",
                    db.clone(),
                )
                .await
                    == ids("a")
                && left("SELECT key FROM idempotency_keys", db.clone()).await == ["fresh"]
                && left(
                    "SELECT u.email FROM sessions s JOIN users u ON u.id = s.user_id",
                    auth_db.clone(),
                )
                .await
                    == ["bob@example.com"]
        })
        .await,
        "not purged as expected: jobs {:?}, events {:?}, keys {:?}, sessions of {:?}",
        left("SELECT id::text FROM jobs", db.clone()).await,
        left("SELECT event_id::text FROM job_event_inbox", db.clone()).await,
        left("SELECT key FROM idempotency_keys", db.clone()).await,
        left(
            "SELECT u.email FROM sessions s JOIN users u ON u.id = s.user_id",
            auth_db.clone()
        )
        .await,
    );
    let (js, topology) = jetstream_at(&testkit::nats_url(), &shop.namespace).await;
    jobs::topology::teardown(&js, &topology).await;
}

/// The order confirmations the sink received (auth's verification e-mails to the test's accounts
/// arrive there too).
fn order_mails(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .into_iter()
        .filter(|m| m.contains("Subject: Your Storefront order"))
        .collect()
}

#[tokio::test]
async fn an_order_sends_exactly_one_email_over_smtp_even_when_its_job_comes_twice() {
    let sink = SmtpSink::start().await;
    let mut shop = Shop::spawn().await;
    let smtp = sink.url();
    shop.add_worker_with(|w| {
        w.email_transport = "smtp".into();
        w.smtp_url = Some(Secret::new(smtp));
        w.email_from = "Storefront Shop <shop@example.com>".into();
    })
    .await;
    let (js, topology) = jetstream_at(&testkit::nats_url(), &shop.namespace).await;
    let admin = shop.admin("admin@example.com").await;
    let ann = shop.customer("ann@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "MAIL-1", 1299, 5).await;
    let placed = order(&shop, &ann, &item, 2).await;
    let order_id = placed["id"].as_str().unwrap();

    assert!(
        eventually(Duration::from_secs(15), || async {
            order_mails(&sink).len() == 1
        })
        .await
    );
    let mail = order_mails(&sink).remove(0);
    assert!(mail.contains("To: ann@example.com"), "{mail}");
    assert!(
        mail.contains(r#"From: "Storefront Shop" <shop@example.com>"#),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Subject: Your Storefront order {order_id}")),
        "{mail}"
    );
    assert!(mail.contains(order_id), "{mail}");
    assert!(mail.contains("Total: 25.98 EUR"), "{mail}");

    // JetStream delivers the same job again (as after a lost ack): no second e-mail.
    let job_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_one(&shop.db.pool().await)
        .await
        .unwrap();
    let payload: Value = sqlx::query_scalar("SELECT payload FROM jobs")
        .fetch_one(&shop.db.pool().await)
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, format!("{job_id}-again").as_str());
    headers.insert(jobs::headers::JOB_ID, job_id.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, "email.order_confirmation");
    js.publish_with_headers(
        topology.job_subject("email.order_confirmation"),
        headers,
        serde_json::to_vec(&payload).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let stream = stream.clone();
            async move {
                let mut stream = stream;
                stream.info().await.unwrap().state.messages == 0
            }
        })
        .await,
        "the second delivery was never acknowledged"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(order_mails(&sink).len(), 1);
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn a_nats_restart_during_a_burst_of_orders_loses_no_job() {
    let mut nats = OwnNats::start().await;
    let sink = SmtpSink::start().await;
    let url = nats.url();
    let mut shop = Shop::spawn_with(|s| s.nats.nats_url = Some(Secret::new(url.clone()))).await;
    let smtp = sink.url();
    shop.add_worker_with(|w| {
        w.email_transport = "smtp".into();
        w.smtp_url = Some(Secret::new(smtp));
    })
    .await;
    let admin = shop.admin("admin@example.com").await;
    let ann = shop.customer("ann@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "BURST-1", 100, 1000).await;

    let burst = |n: usize| {
        let shop = &shop;
        let (ann, item) = (ann.clone(), item.clone());
        async move {
            let mut placed = Vec::new();
            for _ in 0..n {
                let r = shop
                    .post(
                        "/v1/orders",
                        &ann,
                        json!({"lines": [{"item_id": item, "quantity": 1}]}),
                    )
                    .await;
                if r.status() == StatusCode::CREATED {
                    placed.push(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            placed.len()
        }
    };
    // Orders keep coming while NATS goes down and comes back: they commit (PostgreSQL is up),
    // their jobs wait in the outbox, and the relay publishes them once NATS is back.
    let (placed, ()) = tokio::join!(burst(60), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        nats.restart().await;
    });
    assert_eq!(placed, 60, "orders do not depend on NATS");
    let pool = shop.db.pool().await;
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE kind = 'email.order_confirmation' AND status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(60), || async {
            succeeded().await == 60
        })
        .await,
        "{} of 60 jobs succeeded",
        succeeded().await
    );
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 0);
    // Every order got its e-mail. (Delivery is at least once: a job whose done marker could not
    // be written because NATS was down at that instant may send twice; the Message-ID, derived
    // from the job id, lets mail systems recognise the copy.)
    let orders: std::collections::HashSet<String> = order_mails(&sink)
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(orders.len(), 60);
}
