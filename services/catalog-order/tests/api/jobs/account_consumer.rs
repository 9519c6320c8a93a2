//! `account.deleted` during a rolling upgrade: a pod of an older release, which does not know the
//! subject, takes it from the shared events consumer and acknowledges it; catalog-order's own
//! account-events consumer (which older releases do not read) still delivers it to a new pod,
//! which anonymises the customer. An event of a subject this version does not know is not
//! acknowledged but `Nak`ed with a delay. Against a real NATS server.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use catalog_order::app::{
    ACCOUNT_EVENTS_CONSUMER, EVENTS_CONSUMER, spawn_event_listeners, topology,
};
use futures_util::StreamExt;
use jobs::accounts::{ACCOUNT_DELETED_EVENT, AccountDeleted};
use jobs::runtime::publish_event;
use jobs::topology::EVENTS_MAX_DELIVER;
use jobs::{Topology, provision};
use platform::nats::Namespace;
use platform::shutdown::Shutdown;
use testkit::{TestDb, eventually, nats_namespace, nats_url};
use uuid::Uuid;

async fn anonymised(db: &sqlx::PgPool, id: Uuid) -> bool {
    sqlx::query_scalar::<_, Option<time::OffsetDateTime>>(
        "SELECT anonymised_at FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .unwrap()
    .flatten()
    .is_some()
}

#[tokio::test]
async fn an_account_deleted_dropped_by_an_old_pod_is_still_applied_by_a_new_one() {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let namespace = Namespace::new(&nats_namespace()).unwrap();

    // The previous release's topology: the shared events consumer only, without max_deliver.
    let old = Topology::new(namespace.clone());
    provision(&js, &old).await.unwrap();
    let events = js.get_stream(old.events_stream()).await.unwrap();
    events
        .create_consumer(consumer::pull::Config {
            durable_name: Some(EVENTS_CONSUMER.to_owned()),
            filter_subject: old.event_subject(">"),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();

    let ann = Uuid::now_v7();
    sqlx::query("INSERT INTO customers (id, full_name, city) VALUES ($1, 'Ann Example', 'Berlin')")
        .bind(ann)
        .execute(&db)
        .await
        .unwrap();
    let deleted = AccountDeleted {
        event_id: Uuid::now_v7(),
        user_id: ann,
    };
    publish_event(
        &js,
        &old,
        ACCOUNT_DELETED_EVENT,
        &deleted.event_id.to_string(),
        None,
        &deleted,
    )
    .await
    .unwrap();

    // An old pod: the subject is unknown to it, so it acknowledges and drops the event.
    let shared: consumer::PullConsumer = events.get_consumer(EVENTS_CONSUMER).await.unwrap();
    let mut batch = shared
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let mut dropped = 0;
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        assert_eq!(
            message.subject.as_str(),
            old.event_subject(ACCOUNT_DELETED_EVENT)
        );
        message.double_ack().await.unwrap();
        dropped += 1;
    }
    assert_eq!(dropped, 1);
    assert!(!anonymised(&db, ann).await);

    // A new pod starts: it provisions its own account-events consumer and applies the event.
    let new = topology(Topology::new(namespace));
    provision(&js, &new).await.unwrap();
    let shutdown = Shutdown::new();
    let metrics = platform::metrics::Metrics::new("test", "0").unwrap();
    let cache = platform::cache::ResponseCache::new(&Default::default(), &metrics).unwrap();
    spawn_event_listeners(js.clone(), new.clone(), db.clone(), cache, &shutdown);
    assert!(
        eventually(Duration::from_secs(15), || async {
            anonymised(&db, ann).await
        })
        .await,
        "the customer was never anonymised"
    );
    let mut own: consumer::PullConsumer =
        events.get_consumer(ACCOUNT_EVENTS_CONSUMER).await.unwrap();
    let info = own.info().await.unwrap();
    assert_eq!(info.config.filter_subject, new.event_subject("account.>"));
    assert_eq!(info.config.max_deliver, EVENTS_MAX_DELIVER);
    // The shared consumer was updated in place (max_deliver added).
    let mut shared = shared;
    assert_eq!(
        shared.info().await.unwrap().config.max_deliver,
        EVENTS_MAX_DELIVER
    );

    // A newer producer's event: neither acknowledged nor dropped, but held back for a newer
    // consumer (Nak with a delay), on the shared consumer.
    let future = Uuid::now_v7();
    let ack = js
        .publish(
            new.event_subject("future.thing"),
            serde_json::to_vec(&serde_json::json!({"event_id": future}))
                .unwrap()
                .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut shared = shared.clone();
            async move {
                let info = shared.info().await.unwrap();
                info.delivered.stream_sequence >= ack.sequence
                    && info.ack_floor.stream_sequence < ack.sequence
                    && info.num_ack_pending == 1
            }
        })
        .await,
        "the unknown event was acknowledged (or never delivered): {:?}",
        shared.info().await.unwrap()
    );
    // Held back, not redelivered at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let info = shared.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 1);
    assert_eq!(info.num_redelivered, 0);

    shutdown.trigger();
    jobs::topology::teardown(&js, &new).await;
}
