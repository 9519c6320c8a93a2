//! The transactional outbox: a job is committed with the change that causes it and published to
//! JetStream exactly once, whatever crashes in between and however many replicas relay.

use std::time::Duration;

use crate::support::{Shop, problem};
use async_nats::jetstream;
use jobs::Topology;
use platform::nats::Namespace;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{eventually, nats_url};

async fn jetstream_of(shop: &Shop) -> (jetstream::Context, Topology) {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    (js, Topology::new(Namespace::new(&shop.namespace).unwrap()))
}

/// Order confirmations on the jobs stream (auth's e-mails to the test's accounts share it).
async fn stream_messages(js: &jetstream::Context, topology: &Topology) -> u64 {
    use futures_util::StreamExt;
    let Ok(stream) = js.get_stream(topology.jobs_stream()).await else {
        return 0;
    };
    let subject = topology.job_subject(jobs::email::ORDER_CONFIRMATION_KIND);
    let Ok(subjects) = stream.info_with_subjects(&subject).await else {
        return 0;
    };
    subjects
        .filter_map(|s| async move { s.ok() })
        .fold(0, |n, (_, count)| async move { n + count as u64 })
        .await
}

async fn unpublished(shop: &Shop) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE published_at IS NULL")
        .fetch_one(&shop.db.pool().await)
        .await
        .unwrap()
}

async fn insert_jobs(shop: &Shop, n: i32) -> Vec<uuid::Uuid> {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload)
         SELECT gen_random_uuid(), 'email.order_confirmation', jsonb_build_object('n', n)
         FROM generate_series(1, $1) n RETURNING id",
    )
    .bind(n)
    .fetch_all(&shop.db.pool().await)
    .await
    .unwrap()
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn an_order_publishes_one_confirmation_job_its_owner_can_follow() {
    let shop = Shop::spawn().await;
    let (js, topology) = jetstream_of(&shop).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "A-1", 100, 5).await;
    let ann = shop.customer("ann@example.com").await;
    let r = shop
        .client
        .post(shop.url("/v1/orders"))
        .bearer_auth(&ann)
        .header("x-request-id", "order-req-1")
        .header("traceparent", TRACEPARENT)
        .json(&json!({"lines": [{"item_id": item, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    let order: Value = r.json().await.unwrap();

    assert!(
        eventually(Duration::from_secs(5), || async {
            unpublished(&shop).await == 0
        })
        .await
    );
    assert_eq!(stream_messages(&js, &topology).await, 1);
    let (job_id, payload): (uuid::Uuid, Value) = sqlx::query_as("SELECT id, payload FROM jobs")
        .fetch_one(&shop.db.pool().await)
        .await
        .unwrap();
    assert_eq!(payload["order_id"], order["id"]);

    // The message carries the job id for dedupe, its kind and the request id.
    let stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    let message = stream
        .get_last_raw_message_by_subject(&topology.job_subject("email.order_confirmation"))
        .await
        .unwrap();
    let headers = message.headers;
    assert_eq!(
        headers.get(jobs::headers::MSG_ID).unwrap().as_str(),
        job_id.to_string()
    );
    assert_eq!(
        headers.get(jobs::headers::JOB_KIND).unwrap().as_str(),
        "email.order_confirmation"
    );
    assert_eq!(
        headers.get(jobs::headers::REQUEST_ID).unwrap().as_str(),
        "order-req-1"
    );
    assert_eq!(
        headers.get(jobs::headers::TRACEPARENT).unwrap().as_str(),
        TRACEPARENT
    );
    assert_eq!(payload["email"], "ann@example.com");
    assert_eq!(
        message.subject.as_str(),
        topology.job_subject("email.order_confirmation")
    );

    let job: Value = shop
        .get(&format!("/v1/jobs/{job_id}"), Some(&ann))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "email.order_confirmation");
    let bob = shop.customer("bob@example.com").await;
    problem(
        shop.get(&format!("/v1/jobs/{job_id}"), Some(&bob)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        shop.get(&format!("/v1/jobs/{job_id}"), Some(&admin))
            .await
            .status(),
        200
    );
    problem(
        shop.get("/v1/jobs/not-a-uuid", Some(&ann)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn an_order_confirmation_is_sent_once_and_its_job_reports_succeeded() {
    let mut shop = Shop::spawn().await;
    let worker_metrics = shop.add_worker().await;
    let (js, topology) = jetstream_of(&shop).await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "A-1", 100, 5).await;
    let ann = shop.customer("ann@example.com").await;
    let place = || {
        shop.client
            .post(shop.url("/v1/orders"))
            .bearer_auth(&ann)
            .header("idempotency-key", "once")
            .header("traceparent", TRACEPARENT)
            .json(&json!({"lines": [{"item_id": item, "quantity": 1}]}))
            .send()
    };
    assert_eq!(place().await.unwrap().status(), StatusCode::CREATED);
    // The same trigger again (a client retry): replayed, no second job.
    assert_eq!(place().await.unwrap().status(), StatusCode::CREATED);
    let job_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_one(&shop.db.pool().await)
        .await
        .unwrap();
    let status = || async {
        let job: Value = shop
            .get(&format!("/v1/jobs/{job_id}"), Some(&ann))
            .await
            .json()
            .await
            .unwrap();
        job["status"].as_str().unwrap_or("").to_owned()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            status().await == "succeeded"
        })
        .await,
        "job status stayed {}",
        status().await
    );
    let job: Value = shop
        .get(&format!("/v1/jobs/{job_id}"), Some(&ann))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["attempts"], 1);
    let metrics = testkit::get(&worker_metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"jobs_processed_total{kind="email.order_confirmation",outcome="succeeded",service="worker"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        shop.count("job_event_inbox").await,
        2,
        "running and succeeded, each applied once"
    );
    // The worker's events about this job carry the request's trace context on.
    let mut events = js.get_stream(topology.events_stream()).await.unwrap();
    let last = events.info().await.unwrap().state.last_sequence;
    let mut ours = Vec::new();
    for seq in 1..=last {
        let event = events.get_raw_message(seq).await.unwrap();
        let payload: Value = serde_json::from_slice(&event.payload).unwrap();
        if payload["job_id"] == job_id.to_string() {
            ours.push(event);
        }
    }
    assert_eq!(ours.len(), 2);
    for event in ours {
        assert_eq!(
            event
                .headers
                .get(jobs::headers::TRACEPARENT)
                .unwrap()
                .as_str(),
            TRACEPARENT
        );
    }
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn a_refused_order_leaves_no_job() {
    let shop = Shop::spawn().await;
    let admin = shop.admin("admin@example.com").await;
    let cat = shop.category(&admin, "c").await;
    let item = shop.item(&admin, &cat, "A-1", 100, 1).await;
    let ann = shop.customer("ann@example.com").await;
    let r = shop
        .post(
            "/v1/orders",
            &ann,
            json!({"lines": [{"item_id": item, "quantity": 2}]}),
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;
    assert_eq!(shop.count("jobs").await, 0);
}

#[tokio::test]
async fn a_job_committed_before_a_crash_is_published_and_a_republish_is_absorbed() {
    let shop = Shop::spawn().await;
    let (js, topology) = jetstream_of(&shop).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            js.get_stream(topology.jobs_stream()).await.is_ok()
        })
        .await
    );

    // Crash after publish, before mark: the message is already in the stream.
    let early = uuid::Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, early.to_string().as_str());
    js.publish_with_headers(
        topology.job_subject("email.order_confirmation"),
        headers,
        "{}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload) VALUES ($1, 'email.order_confirmation', '{}')",
    )
    .bind(early)
    .execute(&shop.db.pool().await)
    .await
    .unwrap();
    // Crash after commit, before publish: rows nobody published yet.
    insert_jobs(&shop, 3).await;

    assert!(
        eventually(Duration::from_secs(5), || async {
            unpublished(&shop).await == 0
        })
        .await
    );
    assert_eq!(
        stream_messages(&js, &topology).await,
        4,
        "the re-published job was stored twice"
    );
    jobs::topology::teardown(&js, &topology).await;
}

#[tokio::test]
async fn two_relays_publish_every_job_exactly_once() {
    let mut shop = Shop::spawn().await;
    shop.add_replica().await;
    let (js, topology) = jetstream_of(&shop).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            js.get_stream(topology.jobs_stream()).await.is_ok()
        })
        .await
    );
    for _ in 0..5 {
        insert_jobs(&shop, 50).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            unpublished(&shop).await == 0
        })
        .await
    );
    assert_eq!(stream_messages(&js, &topology).await, 250);
    jobs::topology::teardown(&js, &topology).await;
}
