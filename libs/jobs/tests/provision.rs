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

#[tokio::test]
async fn a_process_provisions_once_and_an_unchanged_topology_is_only_read() {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap())
        .with_families(FAMILIES)
        .with_event_consumer(EventConsumer {
            name: "reader-events".into(),
            filter: ">".into(),
        });
    let everything: Vec<String> = jobs::topology::undeclared(&js, &topology).await;
    assert_eq!(everything.len(), 3 + FAMILIES.len() + 1, "{everything:?}");

    // The relay, the consumers and the scheduler of one process hold clones of one topology.
    let (relay, consumer) = (topology.clone(), topology.clone());
    assert!(!consumer.is_provisioned());
    let stop = tokio_util::sync::CancellationToken::new();
    assert!(jobs::topology::provision_with_retry(&js, &relay, &stop).await);
    assert!(consumer.is_provisioned() && topology.is_provisioned());
    // What the server made of the declaration (its defaults filled in) still reads as declared,
    // so a second provisioning, by this process or another replica, writes nothing.
    assert_eq!(
        jobs::topology::undeclared(&js, &topology).await,
        Vec::<String>::new()
    );

    // A changed declaration (a new release) is noticed and applied.
    let mut family = FAMILIES[0];
    family.max_deliver += 1;
    let changed = Topology::new(topology.namespace.clone()).with_family(family);
    assert_eq!(
        jobs::topology::undeclared(&js, &changed).await,
        vec![changed.consumer_name(&family)]
    );
    assert!(!changed.is_provisioned());
    provision(&js, &changed).await.unwrap();
    assert!(jobs::topology::undeclared(&js, &changed).await.is_empty());
    teardown(&js, &topology).await;
}

/// A service's readiness with its topology's check, as the services register it.
async fn service(topology: &Topology) -> (String, platform::shutdown::Shutdown) {
    let mut settings = platform::config::PlatformSettings::with_ports(0, 0);
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings.metrics_addr = "127.0.0.1:0".parse().unwrap();
    let mut builder = platform::AppBuilder::new("jobs-test", "0.0.0", &settings).unwrap();
    topology.add_readiness_check(&mut builder);
    let app = builder.build(axum::Router::new()).await.unwrap();
    let base = format!("http://{}/health/ready", app.http_addr());
    let shutdown = app.shutdown();
    tokio::spawn(app.run());
    (base, shutdown)
}

#[tokio::test]
async fn a_service_is_unready_until_its_topology_is_provisioned() {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    // Three copies on a single server can never be provisioned: the service stays unready and
    // says why, instead of answering uploads with "no such store".
    let mut impossible = Topology::new(Namespace::new(&nats_namespace()).unwrap());
    impossible.storage.replicas = 3;
    let (ready, stop) = service(&impossible).await;
    let retry = tokio_util::sync::CancellationToken::new();
    let provisioning = tokio::spawn({
        let (js, topology, retry) = (js.clone(), impossible.clone(), retry.clone());
        async move { jobs::topology::provision_with_retry(&js, &topology, &retry).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = testkit::get(&ready).await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["checks"]["jetstream"]["status"] != "ok", "{body}");
    retry.cancel();
    assert!(!provisioning.await.unwrap());
    stop.trigger();

    let possible = Topology::new(Namespace::new(&nats_namespace()).unwrap());
    let (ready, stop) = service(&possible).await;
    assert_eq!(
        testkit::get(&ready).await.unwrap().status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(jobs::topology::provision_with_retry(&js, &possible, &Default::default()).await);
    assert_eq!(
        testkit::get(&ready).await.unwrap().status(),
        reqwest::StatusCode::OK
    );
    stop.trigger();
    teardown(&js, &possible).await;
}
