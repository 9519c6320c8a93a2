//! Provisioning against a real NATS server: idempotent, with the retention and dedupe we rely on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use jobs::contracts::FAMILIES;
use jobs::topology::Storage;
use jobs::topology::teardown;
use jobs::{EventConsumer, Topology, provision};
use platform::nats::Namespace;
use testkit::{nats_namespace, nats_url};

#[tokio::test]
async fn provisioning_twice_changes_nothing_and_dedupes_by_message_id() {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap())
        .with_families(FAMILIES)
        .with_event_consumer(EventConsumer {
            name: "reader-events".into(),
            filter: ">".into(),
        });
    provision(&js, &topology).await.unwrap();
    provision(&js, &topology).await.unwrap();

    let mut jobs = js.get_stream(topology.jobs_stream()).await.unwrap();
    let info = jobs.info().await.unwrap().clone();
    assert_eq!(info.config.retention, stream::RetentionPolicy::WorkQueue);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    for family in FAMILIES {
        let name = topology.consumer_name(&family);
        let mut consumer: jetstream::consumer::PullConsumer =
            jobs.get_consumer(&name).await.unwrap();
        let config = &consumer.info().await.unwrap().config;
        assert_eq!(config.max_deliver, family.max_deliver, "{name}");
        assert_eq!(config.ack_policy, jetstream::consumer::AckPolicy::Explicit);
    }
    let mut events = js.get_stream(topology.events_stream()).await.unwrap();
    let reader: jetstream::consumer::PullConsumer =
        events.get_consumer("reader-events").await.unwrap();
    drop(reader);
    assert_eq!(events.info().await.unwrap().state.consumer_count, 1);
    js.get_key_value(topology.jobs_done_bucket()).await.unwrap();
    js.get_object_store(topology.images_store()).await.unwrap();

    // The same Nats-Msg-Id twice within the window is stored once.
    let subject = topology.job_subject("email.order_confirmation");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, "job-1");
    let first = js
        .publish_with_headers(subject.clone(), headers.clone(), "a".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let second = js
        .publish_with_headers(subject, headers, "a".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(jobs.info().await.unwrap().state.messages, 1);

    teardown(&js, &topology).await;
    assert!(js.get_stream(topology.jobs_stream()).await.is_err());
}

#[tokio::test]
async fn the_image_stores_size_limit_follows_the_settings_on_every_provisioning() {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let mut topology = Topology::new(Namespace::new(&nats_namespace()).unwrap());
    let max_bytes = |js: jetstream::Context, store: String| async move {
        let mut stream = js.get_stream(format!("OBJ_{store}")).await.unwrap();
        let config = stream.info().await.unwrap().config.clone();
        (config.max_bytes, config.num_replicas)
    };
    let store = topology.images_store();
    topology.storage = Storage {
        replicas: 1,
        images_max_bytes: 1 << 20,
    };
    provision(&js, &topology).await.unwrap();
    assert_eq!(max_bytes(js.clone(), store.clone()).await, (1 << 20, 1));
    // Raised by an operator: the existing store follows.
    topology.storage.images_max_bytes = 8 << 20;
    provision(&js, &topology).await.unwrap();
    assert_eq!(max_bytes(js.clone(), store.clone()).await, (8 << 20, 1));
    // 0 is no limit.
    topology.storage.images_max_bytes = 0;
    provision(&js, &topology).await.unwrap();
    assert_eq!(max_bytes(js.clone(), store.clone()).await, (-1, 1));
    // Three copies need a cluster of three: a single server says so instead of pretending.
    topology.storage.replicas = 3;
    let err = provision(&js, &topology).await.unwrap_err();
    assert!(format!("{err:#}").contains("replicas"), "{err:#}");
    teardown(&js, &topology).await;
}
