//! A dead job replayed from the DLQ (`jobs::dlq::replay`, what `worker dlq replay` runs) against
//! a real NATS server, its status events applied by catalog-order's event listener: the replayed
//! run's attempts continue after the dead run's, so the job leaves `dead` and ends `succeeded`;
//! a stale event of the dead run changes nothing afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use catalog_order::store::jobs::{apply_event, by_id};
use jobs::events::Event;
use jobs::runtime::{
    Handler, Job, JobError, JobEvent, JobMetrics, spawn_event_listener_on, spawn_family,
};
use jobs::{Topology, provision};
use platform::nats::Namespace;
use platform::shutdown::Shutdown;
use testkit::{TestDb, eventually, nats_namespace, nats_url};
use uuid::Uuid;

const KIND: &str = "email.order_confirmation";

/// Fails until the cause is fixed: a retry, then for good. Once fixed: a retry, then success.
#[derive(Default)]
struct Flaky {
    fixed: AtomicBool,
    calls: Mutex<Vec<(i64, i64)>>,
}

impl Handler for Flaky {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.calls.lock().unwrap().push((job.attempt, job.delivery));
        match (self.fixed.load(Ordering::SeqCst), job.delivery) {
            (_, 1) => Err(JobError::Retry("not yet".into())),
            (false, _) => Err(JobError::Fail("the cause".into())),
            (true, _) => Ok(()),
        }
    }
}

#[tokio::test]
async fn a_replayed_dead_job_ends_succeeded_with_later_attempts_and_stale_events_change_nothing() {
    let test_db = TestDb::new("catalog", &catalog_order::MIGRATOR).await;
    let db = test_db.pool().await;
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client);
    let topology =
        catalog_order::app::topology(Topology::new(Namespace::new(&nats_namespace()).unwrap()));
    provision(&js, &topology).await.unwrap();
    let shutdown = Shutdown::new();
    let handler = Arc::new(Flaky::default());
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    spawn_family(
        js.clone(),
        topology.clone(),
        jobs::email::FAMILY,
        handler.clone(),
        1,
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    let pool = db.clone();
    spawn_event_listener_on(
        js.clone(),
        topology.clone(),
        catalog_order::app::EVENTS_CONSUMER.to_owned(),
        move |event: Event| {
            let pool = pool.clone();
            async move { Ok(apply_event(&pool, &event).await?) }
        },
        &shutdown,
    );

    let job: Uuid = sqlx::query_scalar(
        "INSERT INTO jobs (id, kind, payload) VALUES ($1, $2, '{}') RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(KIND)
    .fetch_one(&db)
    .await
    .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, job.to_string().as_str());
    headers.insert(jobs::headers::JOB_ID, job.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, KIND);
    js.publish_with_headers(topology.job_subject(KIND), headers, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let shown = || async {
        let row = by_id(&db, job).await.unwrap().unwrap();
        (row.status, row.attempts)
    };
    assert!(
        eventually(Duration::from_secs(15), || async {
            shown().await == ("dead".to_owned(), 2)
        })
        .await,
        "not dead after two attempts: {:?}",
        shown().await
    );
    let dead = jobs::dlq::list(&js, &topology).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, "2");

    // The operator fixes the cause and replays: attempts 3 (a retry) and 4 (success), counted by
    // this run's deliveries for max_deliver and the retry delay.
    handler.fixed.store(true, Ordering::SeqCst);
    jobs::dlq::replay(&js, &topology, dead[0].sequence)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), || async {
            shown().await == ("succeeded".to_owned(), 4)
        })
        .await,
        "the replay did not end succeeded at attempt 4: {:?}",
        shown().await
    );
    assert_eq!(
        *handler.calls.lock().unwrap(),
        [(1, 1), (2, 2), (3, 1), (4, 2)]
    );
    assert!(jobs::dlq::list(&js, &topology).await.unwrap().is_empty());

    // Late events of the dead run (fresh ids, as a second report would have) change nothing.
    for (status, attempts) in [("dead", 2), ("running", 2), ("failed", 1)] {
        let stale = Event::JobStatus(JobEvent {
            event_id: Uuid::now_v7(),
            job_id: job,
            kind: KIND.to_owned(),
            status: status.to_owned(),
            attempts,
            error: Some("the cause".into()),
        });
        apply_event(&db, &stale).await.unwrap();
        assert_eq!(
            shown().await,
            ("succeeded".to_owned(), 4),
            "{status}({attempts})"
        );
    }

    shutdown.trigger();
    jobs::topology::teardown(&js, &topology).await;
}
