//! The transactional outbox relay (docs/design.md §6).
//!
//! A service writes a row into its `jobs` table in the same transaction as the change that causes
//! the job (see `migrations/catalog/*_jobs_outbox.up.sql` for the table). Every replica runs a
//! relay: it takes unpublished rows with `FOR UPDATE SKIP LOCKED` (so replicas share the work),
//! publishes each with `Nats-Msg-Id` = job id, waits for JetStream's ack, and marks the rows. A crash
//! between publish and mark re-publishes on the next pass, which the stream's duplicate window
//! absorbs. The relay is woken by `NOTIFY outbox` and polls once a second as a fallback.
//!
//! The same relay serves an outbox of events ([`Outbox::Events`], auth's `event_outbox`: rows
//! whose `kind` is an event name, published to `{ns}.events.<kind>`), so a service that announces
//! a change rather than asking for work gets the same guarantee.

use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;
use platform::shutdown::Shutdown;
use prometheus::{Gauge, IntCounter, IntGauge};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tracing::Instrument;
use uuid::Uuid;

use crate::headers;
use crate::topology::{RECONNECT, Topology, provision_with_retry};

/// Rows published per transaction.
const BATCH: i64 = 100;
/// Poll interval when no notification arrives.
const POLL: Duration = Duration::from_secs(1);

/// `jobs_published_total`, `outbox_pending`, `outbox_oldest_age_seconds`.
#[derive(Clone)]
pub struct OutboxMetrics {
    pub published: IntCounter,
    pub pending: IntGauge,
    pub oldest_age: Gauge,
}

impl OutboxMetrics {
    pub fn register(metrics: &platform::metrics::Metrics) -> Result<Self, prometheus::Error> {
        let m = OutboxMetrics {
            published: IntCounter::new(
                "jobs_published_total",
                "Jobs published from the outbox to JetStream.",
            )?,
            pending: IntGauge::new("outbox_pending", "Jobs committed but not yet published.")?,
            oldest_age: Gauge::new(
                "outbox_oldest_age_seconds",
                "Age of the oldest unpublished job, in seconds (0 when none).",
            )?,
        };
        metrics.register(Box::new(m.published.clone()))?;
        metrics.register(Box::new(m.pending.clone()))?;
        metrics.register(Box::new(m.oldest_age.clone()))?;
        Ok(m)
    }
}

/// Which table a relay reads and where its rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    /// `jobs`: each row is a job, published to `{ns}.jobs.<kind>`.
    Jobs,
    /// `event_outbox`: each row is an event, published to `{ns}.events.<kind>`.
    Events,
}

impl Outbox {
    fn table(self) -> &'static str {
        match self {
            Outbox::Jobs => "jobs",
            Outbox::Events => "event_outbox",
        }
    }

    fn subject(self, topology: &Topology, kind: &str) -> String {
        match self {
            Outbox::Jobs => topology.job_subject(kind),
            Outbox::Events => topology.event_subject(kind),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Unpublished {
    id: Uuid,
    kind: String,
    payload: serde_json::Value,
    request_id: Option<String>,
    traceparent: Option<String>,
}

/// Run the relay of the `jobs` outbox until shutdown (as a task owned by `shutdown`).
pub fn spawn_relay(
    db: PgPool,
    js: jetstream::Context,
    topology: Topology,
    metrics: OutboxMetrics,
    shutdown: &Shutdown,
) {
    spawn_relay_of(Outbox::Jobs, db, js, topology, metrics, shutdown)
}

/// Run the relay of `outbox` until shutdown (as a task owned by `shutdown`).
pub fn spawn_relay_of(
    outbox: Outbox,
    db: PgPool,
    js: jetstream::Context,
    topology: Topology,
    metrics: OutboxMetrics,
    shutdown: &Shutdown,
) {
    let stop = shutdown.token();
    shutdown.spawn("outbox-relay", async move {
        // The streams must exist before anything is published to them.
        if !provision_with_retry(&js, &topology, &stop).await {
            return Ok(());
        }
        let mut backoff = RECONNECT;
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                listener = listen(&db).await;
            }
            match relay_batch_of(outbox, &db, &js, &topology, &metrics).await {
                Ok(n) if n == BATCH as usize => continue,
                Ok(_) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "outbox relay pass failed");
                    if !backoff.wait(&stop).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            update_gauges(outbox, &db, &metrics).await;
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = notified => if result.is_err() { listener = None },
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return Ok(()),
            }
        }
    });
}

async fn listen(db: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(db).await.ok()?;
    listener.listen("outbox").await.ok()?;
    Some(listener)
}

/// Publish up to one batch of jobs; returns how many rows were published.
pub async fn relay_batch(
    db: &PgPool,
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &OutboxMetrics,
) -> anyhow::Result<usize> {
    relay_batch_of(Outbox::Jobs, db, js, topology, metrics).await
}

/// Publish up to one batch of `outbox`; returns how many rows were published.
pub async fn relay_batch_of(
    outbox: Outbox,
    db: &PgPool,
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &OutboxMetrics,
) -> anyhow::Result<usize> {
    let table = outbox.table();
    let mut tx = db.begin().await?;
    let rows: Vec<Unpublished> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, kind, payload, request_id, traceparent FROM {table}
         WHERE published_at IS NULL ORDER BY created_at
         LIMIT $1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in &rows {
        match publish(js, &outbox.subject(topology, &row.kind), row).await {
            Ok(()) => published.push(row.id),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if !published.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET published_at = now() WHERE id = ANY($1)"
        )))
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    metrics.published.inc_by(published.len() as u64);
    match failure {
        Some(e) => Err(e),
        None => Ok(published.len()),
    }
}

async fn publish(js: &jetstream::Context, subject: &str, row: &Unpublished) -> anyhow::Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, row.id.to_string().as_str());
    headers.insert(headers::JOB_ID, row.id.to_string().as_str());
    headers.insert(headers::JOB_KIND, row.kind.as_str());
    if let Some(request_id) = &row.request_id {
        headers.insert(headers::REQUEST_ID, request_id.as_str());
    }
    // A span for the hop through the outbox, a child of the request that committed the job;
    // the worker's span becomes its child.
    let span = tracing::info_span!(
        "outbox publish",
        otel.name = %format!("publish {}", row.kind),
        otel.kind = "producer",
        job_id = %row.id,
    );
    platform::telemetry::set_parent(&span, row.traceparent.as_deref());
    if let Some(traceparent) =
        platform::telemetry::traceparent_of(&span).or_else(|| row.traceparent.clone())
    {
        headers.insert(headers::TRACEPARENT, traceparent.as_str());
    }
    let body = serde_json::to_vec(&row.payload)?;
    async {
        let ack = js
            .publish_with_headers(subject.to_owned(), headers, body.into())
            .await
            .with_context(|| format!("publishing job {}", row.id))?;
        tokio::time::timeout(Duration::from_secs(5), ack)
            .await
            .with_context(|| format!("no JetStream ack for job {} within 5 s", row.id))?
            .with_context(|| format!("JetStream refused job {}", row.id))?;
        Ok(())
    }
    .instrument(span)
    .await
}

async fn update_gauges(outbox: Outbox, db: &PgPool, metrics: &OutboxMetrics) {
    let row: Result<(i64, Option<f64>), _> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM {} WHERE published_at IS NULL",
        outbox.table()
    )))
    .fetch_one(db)
    .await;
    if let Ok((pending, oldest)) = row {
        metrics.pending.set(pending);
        metrics.oldest_age.set(oldest.unwrap_or(0.0));
    }
}
