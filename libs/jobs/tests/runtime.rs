//! The consumer runtime against a real NATS server: once-only effects, retries with delay,
//! dead letters with their reason, panics contained, events for every status change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use jobs::runtime::{Handler, Job, JobError, JobEvent, JobMetrics, spawn_family};
use jobs::topology::teardown;
use jobs::{Family, Topology, provision};
use platform::nats::Namespace;
use platform::shutdown::Shutdown;
use serde_json::json;
use testkit::{OwnNats, eventually, nats_namespace, nats_url};
use uuid::Uuid;

#[derive(Default)]
struct Scripted {
    calls: Mutex<Vec<(Uuid, i64)>>,
}

impl Handler for Scripted {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.calls.lock().unwrap().push((job.id, job.attempt));
        match job.payload["outcome"].as_str().unwrap_or("ok") {
            "ok" => Ok(()),
            "fail" => Err(JobError::Fail("corrupt input".into())),
            "flaky" if job.attempt < 2 => Err(JobError::Retry("not yet".into())),
            "panic_once" if job.attempt < 2 => panic!("boom"),
            "always_retry" => Err(JobError::Retry("still down".into())),
            _ => Ok(()),
        }
    }
}

struct Rig {
    js: jetstream::Context,
    topology: Topology,
    handler: Arc<Scripted>,
    events: Arc<Mutex<Vec<JobEvent>>>,
    shutdown: Shutdown,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn rig(family: &str) -> Rig {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap())
        .with_families(jobs::contracts::FAMILIES);
    provision(&js, &topology).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut sub = client
        .subscribe(topology.event_subject("job.status"))
        .await
        .unwrap();
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            sink.lock()
                .unwrap()
                .push(serde_json::from_slice(&m.payload).unwrap());
        }
    });
    let handler = Arc::new(Scripted::default());
    let shutdown = Shutdown::new();
    let family = topology.family(family).unwrap();
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    spawn_family(
        js.clone(),
        topology.clone(),
        family,
        handler.clone(),
        2,
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    Rig {
        js,
        topology,
        handler,
        events,
        shutdown,
    }
}

impl Rig {
    async fn publish(&self, kind: &str, id: Uuid, payload: serde_json::Value) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(jobs::headers::MSG_ID, id.to_string().as_str());
        headers.insert(jobs::headers::JOB_KIND, kind);
        self.js
            .publish_with_headers(
                self.topology.job_subject(kind),
                headers,
                serde_json::to_vec(&payload).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn statuses(&self, id: Uuid) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.job_id == id)
            .map(|e| e.status.clone())
            .collect()
    }

    fn calls(&self, id: Uuid) -> Vec<i64> {
        self.handler
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, _)| *j == id)
            .map(|(_, a)| *a)
            .collect()
    }

    async fn dlq(&self) -> Vec<jetstream::message::StreamMessage> {
        let stream = self
            .js
            .get_stream(self.topology.dlq_stream())
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut seq = 1;
        while let Ok(m) = stream.get_raw_message(seq).await {
            out.push(m);
            seq += 1;
        }
        out
    }

    async fn settled(&self, id: Uuid, last: &str, within: Duration) -> bool {
        eventually(within, || async {
            self.statuses(id).last().map(String::as_str) == Some(last)
        })
        .await
    }

    async fn cleanup(&self) {
        self.shutdown.trigger();
        teardown(&self.js, &self.topology).await;
    }
}

#[tokio::test]
async fn a_job_runs_once_and_reports_running_then_succeeded() {
    let rig = rig("email").await;
    let id = Uuid::now_v7();
    rig.publish("email.order_confirmation", id, json!({"outcome": "ok"}))
        .await;
    assert!(rig.settled(id, "succeeded", Duration::from_secs(5)).await);
    assert_eq!(rig.statuses(id), ["running", "succeeded"]);
    assert_eq!(rig.calls(id), [1]);
    let done = rig
        .js
        .get_key_value(rig.topology.jobs_done_bucket())
        .await
        .unwrap();
    assert!(done.get(id.to_string()).await.unwrap().is_some());

    // A delivery of a job whose effect already happened is acknowledged, not run.
    let again = Uuid::now_v7();
    done.put(again.to_string(), "1".into()).await.unwrap();
    rig.publish("email.order_confirmation", again, json!({"outcome": "ok"}))
        .await;
    let js = rig.js.clone();
    let stream = rig.topology.jobs_stream();
    assert!(
        eventually(Duration::from_secs(5), || {
            let (js, stream) = (js.clone(), stream.clone());
            async move {
                let mut jobs = js.get_stream(stream).await.unwrap();
                jobs.info().await.unwrap().state.messages == 0
            }
        })
        .await
    );
    assert!(rig.calls(again).is_empty());
    rig.cleanup().await;
}

#[tokio::test]
async fn a_retryable_failure_is_retried_after_a_delay() {
    let rig = rig("email").await;
    let id = Uuid::now_v7();
    rig.publish("email.order_confirmation", id, json!({"outcome": "flaky"}))
        .await;
    assert!(rig.settled(id, "succeeded", Duration::from_secs(10)).await);
    assert_eq!(
        rig.statuses(id),
        ["running", "failed", "running", "succeeded"]
    );
    assert_eq!(rig.calls(id), [1, 2]);
    let failed = rig
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.status == "failed")
        .cloned()
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("not yet"));
    rig.cleanup().await;
}

#[tokio::test]
async fn a_panicking_handler_counts_as_a_failed_attempt() {
    let rig = rig("email").await;
    let id = Uuid::now_v7();
    rig.publish(
        "email.order_confirmation",
        id,
        json!({"outcome": "panic_once"}),
    )
    .await;
    assert!(rig.settled(id, "succeeded", Duration::from_secs(10)).await);
    assert_eq!(rig.calls(id), [1, 2]);
    rig.cleanup().await;
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dlq_at_once_with_its_reason() {
    let rig = rig("email").await;
    let id = Uuid::now_v7();
    rig.publish("email.order_confirmation", id, json!({"outcome": "fail"}))
        .await;
    assert!(rig.settled(id, "dead", Duration::from_secs(5)).await);
    assert_eq!(rig.calls(id), [1]);
    let dlq = rig.dlq().await;
    assert_eq!(dlq.len(), 1);
    let headers = &dlq[0].headers;
    assert_eq!(
        headers.get(jobs::headers::JOB_ERROR).unwrap().as_str(),
        "corrupt input"
    );
    assert_eq!(
        headers.get(jobs::headers::JOB_ATTEMPTS).unwrap().as_str(),
        "1"
    );
    assert_eq!(
        headers.get(jobs::headers::JOB_ID).unwrap().as_str(),
        id.to_string()
    );
    assert_eq!(
        headers.get(jobs::headers::JOB_KIND).unwrap().as_str(),
        "email.order_confirmation"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&dlq[0].payload).unwrap()["outcome"],
        "fail"
    );
    let mut jobs = rig.js.get_stream(rig.topology.jobs_stream()).await.unwrap();
    assert_eq!(jobs.info().await.unwrap().state.messages, 0);
    rig.cleanup().await;
}

#[tokio::test]
async fn retries_end_in_the_dlq_after_max_deliver() {
    // catalog jobs get 3 deliveries: after 1 s and 2 s of delay the third is the last.
    let rig = rig("catalog").await;
    let id = Uuid::now_v7();
    rig.publish(
        "catalog.expire_orders",
        id,
        json!({"outcome": "always_retry"}),
    )
    .await;
    let dead = rig.settled(id, "dead", Duration::from_secs(15)).await;
    assert!(dead, "{:?} {:?}", rig.statuses(id), rig.calls(id));
    assert_eq!(rig.calls(id), [1, 2, 3]);
    assert_eq!(
        rig.dlq().await[0]
            .headers
            .get(jobs::headers::JOB_ATTEMPTS)
            .unwrap()
            .as_str(),
        "3"
    );
    rig.cleanup().await;
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_not_retried() {
    let rig = rig("email").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, "not-a-uuid");
    headers.insert(jobs::headers::JOB_KIND, "email.order_confirmation");
    rig.js
        .publish_with_headers(
            rig.topology.job_subject("email.order_confirmation"),
            headers,
            "{".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            rig.dlq().await.len() == 1
        })
        .await
    );
    assert!(rig.handler.calls.lock().unwrap().is_empty());
    rig.cleanup().await;
}

#[tokio::test]
async fn a_dead_job_can_be_listed_replayed_and_purged() {
    let rig = rig("email").await;
    let id = Uuid::now_v7();
    // Fails for good the first time; the replay carries a payload the handler accepts only
    // because the script now says so.
    rig.publish("email.order_confirmation", id, json!({"outcome": "fail"}))
        .await;
    assert!(rig.settled(id, "dead", Duration::from_secs(5)).await);
    let dead = jobs::dlq::list(&rig.js, &rig.topology).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job_id, id.to_string());
    assert_eq!(dead[0].error, "corrupt input");

    // Replaying runs the same job id again (still failing here: the point is the round trip).
    let replayed = jobs::dlq::replay(&rig.js, &rig.topology, dead[0].sequence)
        .await
        .unwrap();
    assert_eq!(replayed.job_id, id.to_string());
    assert!(
        eventually(Duration::from_secs(5), || async {
            rig.calls(id).len() == 2
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            jobs::dlq::list(&rig.js, &rig.topology).await.unwrap().len() == 1
        })
        .await
    );
    // The replayed run's attempts continue after the dead run's, in its events and its DLQ entry.
    assert_eq!(rig.calls(id), [1, 2]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            rig.statuses(id).len() == 4
        })
        .await
    );
    let attempts: Vec<(String, i64)> = rig
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.job_id == id)
        .map(|e| (e.status.clone(), e.attempts))
        .collect();
    assert_eq!(
        attempts,
        [
            ("running".to_owned(), 1),
            ("dead".to_owned(), 1),
            ("running".to_owned(), 2),
            ("dead".to_owned(), 2)
        ]
    );
    assert_eq!(
        jobs::dlq::list(&rig.js, &rig.topology).await.unwrap()[0].attempts,
        "2"
    );
    assert!(
        jobs::dlq::replay(&rig.js, &rig.topology, 999)
            .await
            .is_err()
    );
    assert_eq!(jobs::dlq::purge(&rig.js, &rig.topology).await.unwrap(), 1);
    assert!(
        jobs::dlq::list(&rig.js, &rig.topology)
            .await
            .unwrap()
            .is_empty()
    );
    rig.cleanup().await;
}

#[tokio::test]
async fn a_job_nobody_ever_answers_is_dead_lettered_via_the_advisory() {
    // A family with a 1 s ack_wait and 2 deliveries, and "workers" that take jobs and die
    // (pull, never answer): JetStream gives up and says so; the watch moves the job to the DLQ.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let hang = Family {
        name: "email",
        ack_wait: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        max_deliver: 2,
        max_ack_pending: 1,
    };
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap()).with_family(hang);
    provision(&js, &topology).await.unwrap();
    let shutdown = Shutdown::new();
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    jobs::runtime::spawn_max_delivery_watch(
        js.clone(),
        topology.clone(),
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    let mut events = client
        .subscribe(topology.event_subject("job.status"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let id = Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, "email.order_confirmation");
    js.publish_with_headers(
        topology.job_subject("email.order_confirmation"),
        headers,
        "{}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream(topology.jobs_stream())
        .await
        .unwrap()
        .get_consumer(&topology.consumer_name(&hang))
        .await
        .unwrap();
    let mut taken = 0;
    for _ in 0..10 {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_millis(1500))
            .messages()
            .await
            .unwrap();
        while let Some(Ok(_abandoned)) = batch.next().await {
            taken += 1;
        }
        if taken >= 2 {
            break;
        }
    }
    assert_eq!(taken, 2);
    // Workers keep asking for work; that is when JetStream notices the job is exhausted.
    let mut more = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    assert!(
        more.next().await.is_none(),
        "an exhausted job was delivered again"
    );

    let dlq_stream = topology.dlq_stream();
    let jsc = js.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let (js, name) = (jsc.clone(), dlq_stream.clone());
            async move {
                js.get_stream(name)
                    .await
                    .unwrap()
                    .info()
                    .await
                    .unwrap()
                    .state
                    .messages
                    == 1
            }
        })
        .await
    );
    let dlq = js.get_stream(topology.dlq_stream()).await.unwrap();
    let dead = dlq.get_raw_message(1).await.unwrap();
    assert_eq!(
        dead.headers.get(jobs::headers::JOB_ID).unwrap().as_str(),
        id.to_string()
    );
    assert!(
        dead.headers
            .get(jobs::headers::JOB_ERROR)
            .unwrap()
            .as_str()
            .contains("no answer after 2 deliveries")
    );
    let mut jobs_stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    assert_eq!(
        jobs_stream.info().await.unwrap().state.messages,
        0,
        "left in the work queue"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    let event: JobEvent = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!((event.job_id, event.status.as_str()), (id, "dead"));
    shutdown.trigger();
    teardown(&js, &topology).await;
}

/// Sleeps for the payload's `millis`, tracking how many run at once.
#[derive(Default)]
struct Slow {
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    attempts: Mutex<Vec<i64>>,
}

impl Handler for Slow {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        self.attempts.lock().unwrap().push(job.attempt);
        let millis = job.payload["millis"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.running.fetch_sub(1, SeqCst);
        self.done.fetch_add(1, SeqCst);
        Ok(())
    }
}

async fn slow_rig(
    family: Family,
    concurrency: usize,
) -> (jetstream::Context, Topology, Arc<Slow>, Shutdown) {
    let js = jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap()).with_family(family);
    provision(&js, &topology).await.unwrap();
    let handler = Arc::new(Slow::default());
    let shutdown = Shutdown::new();
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    spawn_family(
        js.clone(),
        topology.clone(),
        family,
        handler.clone(),
        concurrency,
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    (js, topology, handler, shutdown)
}

async fn publish_job(
    js: &jetstream::Context,
    topology: &Topology,
    kind: &str,
    payload: serde_json::Value,
) {
    let id = Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, kind);
    js.publish_with_headers(
        topology.job_subject(kind),
        headers,
        serde_json::to_vec(&payload).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test]
async fn a_job_longer_than_ack_wait_is_kept_by_in_progress_acks_and_runs_once() {
    let family = Family {
        name: "image",
        ack_wait: Duration::from_secs(2),
        timeout: Duration::from_secs(30),
        max_deliver: 5,
        max_ack_pending: 4,
    };
    // Two slots: a redelivery would be picked up while the first attempt still runs.
    let (js, topology, handler, shutdown) = slow_rig(family, 2).await;
    publish_job(&js, &topology, "image.thumbnail", json!({"millis": 5000})).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            handler.done.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await
    );
    // Had the job been given up after 2 s it would have started again meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(*handler.attempts.lock().unwrap(), [1]);
    shutdown.trigger();
    teardown(&js, &topology).await;
}

#[tokio::test]
async fn a_family_runs_at_most_its_concurrency_at_once() {
    let family = Family {
        name: "image",
        ack_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
        max_deliver: 5,
        max_ack_pending: 16,
    };
    let (js, topology, handler, shutdown) = slow_rig(family, 2).await;
    for _ in 0..6 {
        publish_job(&js, &topology, "image.thumbnail", json!({"millis": 400})).await;
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            handler.done.load(std::sync::atomic::Ordering::SeqCst) == 6
        })
        .await
    );
    assert_eq!(handler.peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    shutdown.trigger();
    teardown(&js, &topology).await;
}

#[tokio::test]
async fn on_shutdown_a_consumer_stops_pulling_and_finishes_the_job_in_hand() {
    let family = Family {
        name: "image",
        ack_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
        max_deliver: 5,
        max_ack_pending: 16,
    };
    let (js, topology, handler, shutdown) = slow_rig(family, 1).await;
    publish_job(&js, &topology, "image.thumbnail", json!({"millis": 1500})).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            handler.running.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await
    );
    publish_job(&js, &topology, "image.thumbnail", json!({"millis": 0})).await;
    shutdown.trigger();
    assert!(
        shutdown.wait_for_tasks(Duration::from_secs(10)).await,
        "the consumer did not stop"
    );
    assert_eq!(
        handler.done.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the job in hand finished; the next was not taken"
    );
    // The finished job is acknowledged (the server removes it a moment after the ack); the one
    // never taken waits for the next worker.
    let stream = js.get_stream(topology.jobs_stream()).await.unwrap();
    let messages = || {
        let mut stream = stream.clone();
        async move { stream.info().await.unwrap().state.messages }
    };
    assert!(
        eventually(Duration::from_secs(5), || async { messages().await == 1 }).await,
        "{} messages left",
        messages().await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages().await, 1, "the untaken job stays");
    teardown(&js, &topology).await;
}

/// Succeeds, but its first run takes NATS away just before returning, as a restart under traffic
/// does: the server goes into lame-duck mode (what an orchestrated NATS restart starts with:
/// JetStream stops at once, connections stay a while, so writes fail rather than wait for the
/// reconnect) and is restarted 1.5 s later.
struct CutsNats {
    nats: Arc<tokio::sync::Mutex<OwnNats>>,
    attempts: Mutex<Vec<i64>>,
}

impl Handler for CutsNats {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let first = {
            let mut attempts = self.attempts.lock().unwrap();
            attempts.push(job.attempt);
            attempts.len() == 1
        };
        if first {
            let port = self.nats.lock().await.port;
            let pid = std::process::Command::new("pgrep")
                .args(["-f", "--", &format!("-p {port} -js")])
                .output()
                .unwrap();
            let pid = String::from_utf8(pid.stdout).unwrap();
            let status = std::process::Command::new("kill")
                .args(["-USR2", pid.trim()])
                .status()
                .unwrap();
            assert!(status.success(), "no lame-duck signal to {pid:?}");
            // Give JetStream a moment to stop.
            tokio::time::sleep(Duration::from_millis(500)).await;
            // A server in lame-duck mode waits out its grace period (10 s) before it exits.
            let nats = self.nats.clone();
            let pid = pid.trim().to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status();
                nats.lock().await.restart().await;
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_job_whose_done_marker_meets_a_nats_restart_is_not_run_again() {
    let nats = Arc::new(tokio::sync::Mutex::new(OwnNats::start().await));
    let url = nats.lock().await.url();
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    // A short ack_wait: without the done marker the job comes back within the test.
    let family = Family {
        name: "email",
        ack_wait: Duration::from_secs(6),
        timeout: Duration::from_secs(10),
        max_deliver: 5,
        max_ack_pending: 4,
    };
    let topology = Topology::new(Namespace::new(&nats_namespace()).unwrap()).with_family(family);
    provision(&js, &topology).await.unwrap();
    let handler = Arc::new(CutsNats {
        nats: nats.clone(),
        attempts: Mutex::new(Vec::new()),
    });
    let shutdown = Shutdown::new();
    let registry = platform::metrics::Metrics::new("test", "0").unwrap();
    // Two slots: a redelivery would be picked up even while the first attempt still holds one.
    spawn_family(
        js.clone(),
        topology.clone(),
        family,
        handler.clone(),
        2,
        JobMetrics::register(&registry).unwrap(),
        &shutdown,
    );
    let id = Uuid::now_v7();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(jobs::headers::MSG_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_ID, id.to_string().as_str());
    headers.insert(jobs::headers::JOB_KIND, "email.order_confirmation");
    js.publish_with_headers(
        topology.job_subject("email.order_confirmation"),
        headers,
        "{}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let done_marker = || {
        let (js, bucket) = (js.clone(), topology.jobs_done_bucket());
        async move {
            let Ok(done) = js.get_key_value(bucket).await else {
                return false;
            };
            matches!(done.get(id.to_string()).await, Ok(Some(_)))
        }
    };
    assert!(
        eventually(Duration::from_secs(30), done_marker).await,
        "the done marker was never written; attempts {:?}",
        handler.attempts.lock().unwrap()
    );
    let jobs_left = || {
        let (js, stream) = (js.clone(), topology.jobs_stream());
        async move {
            match js.get_stream(stream).await {
                Ok(mut jobs) => jobs.info().await.map(|i| i.state.messages).ok(),
                Err(_) => None,
            }
        }
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            jobs_left().await == Some(0)
        })
        .await,
        "the job was never acknowledged"
    );
    // Past another ack_wait: a job left unacknowledged would have run again by now.
    tokio::time::sleep(family.ack_wait + Duration::from_secs(2)).await;
    assert_eq!(
        *handler.attempts.lock().unwrap(),
        [1],
        "the e-mail went out twice"
    );
    shutdown.trigger();
    teardown(&js, &topology).await;
}
