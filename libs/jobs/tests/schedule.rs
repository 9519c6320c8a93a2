//! The scheduler against a real NATS server: two schedulers (a double leader) still produce one
//! job per slot, and a late copy of a slot's job is not run again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use jobs::maintenance::{CATALOG_FAMILY, CatalogJob};
use jobs::runtime::{Handler, Job, JobError, JobMetrics, spawn_family};
use jobs::schedule::{Entry, LocalLeader, publish_slot, slot_job, spawn_scheduler};
use jobs::topology::teardown;
use jobs::{Topology, provision};
use platform::nats::Namespace;
use platform::shutdown::Shutdown;
use testkit::{eventually, nats_namespace, nats_url};

#[derive(Default)]
struct Counting(AtomicUsize);

impl Handler for Counting {
    async fn handle(&self, _job: &Job) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn two_schedulers_produce_one_job_per_slot_and_a_late_copy_does_not_run() {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let topology =
        Topology::new(Namespace::new(&nats_namespace()).unwrap()).with_family(CATALOG_FAMILY);
    provision(&js, &topology).await.unwrap();
    let shutdown = Shutdown::new();
    let runs = Arc::new(Counting::default());
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    spawn_family(
        js.clone(),
        topology.clone(),
        CATALOG_FAMILY,
        runs.clone(),
        1,
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    let entry = Entry {
        kind: CatalogJob::ExpireOrders.kind(),
        every: Duration::from_secs(3600),
    };
    for _ in 0..2 {
        spawn_scheduler(
            js.clone(),
            topology.clone(),
            vec![entry],
            Arc::new(LocalLeader),
            &shutdown,
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            runs.0.load(Ordering::SeqCst) >= 1
        })
        .await
    );
    // Both schedulers have ticked several times by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs.0.load(Ordering::SeqCst), 1);
    assert!(
        !publish_slot(&js, &topology, &entry, SystemTime::now())
            .await
            .unwrap(),
        "JetStream reports the slot's job as a duplicate"
    );

    // After the duplicate window a scheduler could publish the slot again (say, restarted
    // 5 minutes into an hourly slot): the job id is the same, and the done marker stops it.
    let (_, id) = slot_job(&entry, SystemTime::now());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        jobs::headers::MSG_ID,
        format!("{id}-after-the-window").as_str(),
    );
    headers.insert(jobs::headers::JOB_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, CatalogJob::ExpireOrders.kind());
    js.publish_with_headers(
        topology.job_subject(CatalogJob::ExpireOrders.kind()),
        headers,
        "{}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut s = stream.clone();
            async move { s.info().await.unwrap().state.messages == 0 }
        })
        .await
    );
    assert_eq!(stream.info().await.unwrap().state.messages, 0);
    assert_eq!(
        runs.0.load(Ordering::SeqCst),
        1,
        "the late copy did not run"
    );
    shutdown.trigger();
    teardown(&js, &topology).await;
}
