//! `jobs-rate DATABASE_URL NATS_URL JOBS`: end-to-end throughput of no-op jobs through the real
//! path — rows inserted into the outbox, published by the relay, consumed by the job runtime
//! (done marker, status events, ack) — against raw JetStream in the same run: the same number of
//! messages of the same size published (each ack awaited, as the relay does) and pull-consumed
//! with the same client. Prints `raw_per_s=… jobs_per_s=…`.
//!
//! DATABASE_URL must hold the catalog schema (`catalog-order migrate up`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use jobs::runtime::{Handler, Job, JobError, JobMetrics, spawn_family};
use jobs::{Family, Topology};
use platform::nats::Namespace;
use platform::shutdown::Shutdown;

/// The size of a typical job payload (an order confirmation with a few lines).
fn payload() -> serde_json::Value {
    serde_json::json!({"order_id": uuid::Uuid::now_v7(), "customer_id": uuid::Uuid::now_v7(),
        "email": "someone@example.com", "total_cents": 12990, "currency": "EUR",
        "lines": [{"name": "A fine mug", "quantity": 2, "unit_price_cents": 4995},
                  {"name": "A teapot", "quantity": 1, "unit_price_cents": 3000}]})
}

struct Count(AtomicU64);

impl Handler for Count {
    async fn handle(&self, _job: &Job) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn wait_for(counter: &AtomicU64, n: u64) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn raw(js: &jetstream::Context, suffix: &str, n: u64, body: &[u8]) -> anyhow::Result<f64> {
    let name = format!("BENCHRAW_{suffix}");
    let subject = format!("benchraw.{suffix}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    let consuming = tokio::spawn(async move {
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            message
                .map_err(anyhow::Error::msg)?
                .ack()
                .await
                .map_err(anyhow::Error::msg)?;
            if counter.fetch_add(1, Ordering::SeqCst) + 1 == n {
                break;
            }
        }
        anyhow::Ok(())
    });
    let started = Instant::now();
    for i in 0..n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(jobs::headers::MSG_ID, format!("{suffix}-{i}").as_str());
        js.publish_with_headers(subject.clone(), headers, body.to_vec().into())
            .await?
            .await?;
    }
    wait_for(&acked, n).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    consuming.await??;
    js.delete_stream(&name).await?;
    Ok(rate)
}

async fn system(
    db: &sqlx::PgPool,
    js: &jetstream::Context,
    suffix: &str,
    n: u64,
) -> anyhow::Result<f64> {
    let family = Family {
        name: "bench",
        ack_wait: Duration::from_secs(15),
        timeout: Duration::from_secs(30),
        max_deliver: 3,
        max_ack_pending: 256,
    };
    let topology = Topology::new(Namespace::new(&format!("bench_{suffix}"))?).with_family(family);
    jobs::provision(js, &topology).await?;
    let shutdown = Shutdown::new();
    let registry = platform::metrics::Metrics::new("bench", "0")?;
    // catalog-order's outbox, its `jobs` table, as catalog-order declares it.
    let outbox = jobs::outbox::Outbox {
        table: "jobs",
        columns: jobs::outbox::Columns::NAMED_AS_THEY_ARE,
        channel: "outbox",
        publishes: jobs::outbox::Publishes::Jobs,
    };
    jobs::outbox::spawn_relay(
        outbox,
        db.clone(),
        js.clone(),
        topology.clone(),
        jobs::outbox::OutboxMetrics::register(&registry, &outbox)?,
        &shutdown,
    );
    let handled = Arc::new(Count(AtomicU64::new(0)));
    spawn_family(
        js.clone(),
        topology.clone(),
        family,
        handled.clone(),
        32,
        JobMetrics::register(&registry)?,
        &shutdown,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload)
         SELECT gen_random_uuid(), 'bench.noop', $1 FROM generate_series(1, $2)",
    )
    .bind(payload())
    .bind(i64::try_from(n)?)
    .execute(db)
    .await?;
    wait_for(&handled.0, n).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    shutdown.trigger();
    shutdown.wait_for_tasks(Duration::from_secs(5)).await;
    jobs::topology::teardown(js, &topology).await;
    sqlx::query("DELETE FROM jobs").execute(db).await?;
    Ok(rate)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, database_url, nats_url, jobs] = args.as_slice() else {
        anyhow::bail!("usage: jobs-rate DATABASE_URL NATS_URL JOBS");
    };
    let n: u64 = jobs.parse()?;
    let db = sqlx::PgPool::connect(database_url)
        .await
        .context("connecting to PostgreSQL")?;
    let js = jetstream::new(
        async_nats::connect(nats_url)
            .await
            .context("connecting to NATS")?,
    );
    let suffix = format!("{:x}", std::process::id());
    let body = serde_json::to_vec(&payload())?;
    let raw_rate = raw(&js, &suffix, n, &body).await?;
    let jobs_rate = system(&db, &js, &suffix, n).await?;
    println!(
        "raw_per_s={raw_rate:.0} jobs_per_s={jobs_rate:.0} payload_bytes={}",
        body.len()
    );
    Ok(())
}
