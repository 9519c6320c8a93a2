//! The transactional outbox relay (docs/design.md §6).
//!
//! A service writes a row into its outbox table in the same transaction as the change that causes
//! the job, and declares the table ([`Outbox`]: its name, columns and notify channel). Every
//! replica runs a relay: it takes unpublished rows with `FOR UPDATE SKIP LOCKED` (so replicas
//! share the work), publishes each with `Nats-Msg-Id` = row id, waits for JetStream's ack, and
//! marks the rows. A crash between publish and mark re-publishes on the next pass, which the
//! stream's duplicate window absorbs. The relay is woken by the table's `NOTIFY` and polls once a
//! second as a fallback.
//!
//! An outbox's rows are jobs or events ([`Publishes`]): a service that announces a change rather
//! than asking for work gets the same guarantee.

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

/// `jobs_published_total`, `outbox_pending`, `outbox_oldest_age_seconds`, each labelled
/// `outbox="<table>"`, so a service with several outboxes registers one series per table (sums over
/// the label read as one outbox did).
#[derive(Clone)]
pub struct OutboxMetrics {
    pub published: IntCounter,
    pub pending: IntGauge,
    pub oldest_age: Gauge,
}

impl OutboxMetrics {
    pub fn register(
        metrics: &platform::metrics::Metrics,
        outbox: &Outbox,
    ) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| {
            prometheus::Opts::new(name, help).const_label("outbox", outbox.table)
        };
        let m = OutboxMetrics {
            published: IntCounter::with_opts(opts(
                "jobs_published_total",
                "Jobs published from the outbox to JetStream.",
            ))?,
            pending: IntGauge::with_opts(opts(
                "outbox_pending",
                "Jobs committed but not yet published.",
            ))?,
            oldest_age: Gauge::with_opts(opts(
                "outbox_oldest_age_seconds",
                "Age of the oldest unpublished job, in seconds (0 when none).",
            ))?,
        };
        metrics.register(Box::new(m.published.clone()))?;
        metrics.register(Box::new(m.pending.clone()))?;
        metrics.register(Box::new(m.oldest_age.clone()))?;
        Ok(m)
    }
}

/// What the rows of an outbox are published as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publishes {
    /// Jobs: a row goes to `{ns}.jobs.<kind>`.
    Jobs,
    /// Events: a row goes to `{ns}.events.<kind>`.
    Events,
}

/// The columns of an outbox table: the row's id (the message's `Nats-Msg-Id` and `job-id`), its
/// kind, its JSON payload, the request id and `traceparent` of the request that wrote it (both
/// nullable), when it was written and when it was published (NULL until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub id: &'static str,
    pub kind: &'static str,
    pub payload: &'static str,
    pub request_id: &'static str,
    pub traceparent: &'static str,
    pub created_at: &'static str,
    pub published_at: &'static str,
}

impl Columns {
    /// `id`, `kind`, `payload`, `request_id`, `traceparent`, `created_at`, `published_at`.
    pub const NAMED_AS_THEY_ARE: Columns = Columns {
        id: "id",
        kind: "kind",
        payload: "payload",
        request_id: "request_id",
        traceparent: "traceparent",
        created_at: "created_at",
        published_at: "published_at",
    };
}

/// A service's outbox table, as its relay reads it. The service declares it (its migrations make
/// the table and the trigger that notifies `channel`); the relay builds its statements from these
/// names, which are the service's constants, never input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbox {
    pub table: &'static str,
    pub columns: Columns,
    /// What the table's insert trigger `NOTIFY`s; the relay also polls once a second.
    pub channel: &'static str,
    pub publishes: Publishes,
}

impl Outbox {
    fn subject(&self, topology: &Topology, kind: &str) -> String {
        match self.publishes {
            Publishes::Jobs => topology.job_subject(kind),
            Publishes::Events => topology.event_subject(kind),
        }
    }

    fn claim_sql(&self) -> String {
        let Columns {
            id,
            kind,
            payload,
            request_id,
            traceparent,
            created_at,
            published_at,
        } = self.columns;
        format!(
            "SELECT {id} AS id, {kind} AS kind, {payload} AS payload, \
             {request_id} AS request_id, {traceparent} AS traceparent FROM {table} \
             WHERE {published_at} IS NULL ORDER BY {created_at} \
             LIMIT $1 FOR UPDATE SKIP LOCKED",
            table = self.table
        )
    }

    fn mark_sql(&self) -> String {
        format!(
            "UPDATE {table} SET {published_at} = now() WHERE {id} = ANY($1)",
            table = self.table,
            published_at = self.columns.published_at,
            id = self.columns.id
        )
    }

    fn pending_sql(&self) -> String {
        format!(
            "SELECT count(*), extract(epoch FROM now() - min({created_at}))::float8 \
             FROM {table} WHERE {published_at} IS NULL",
            table = self.table,
            created_at = self.columns.created_at,
            published_at = self.columns.published_at
        )
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

/// Run the relay of `outbox` until shutdown (as a task owned by `shutdown`).
pub fn spawn_relay(
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
                listener = listen(&db, outbox.channel).await;
            }
            match relay_batch(&outbox, &db, &js, &topology, &metrics).await {
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
            update_gauges(&outbox, &db, &metrics).await;
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

async fn listen(db: &PgPool, channel: &str) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(db).await.ok()?;
    listener.listen(channel).await.ok()?;
    Some(listener)
}

/// Publish up to one batch of `outbox`'s rows; returns how many were published.
pub async fn relay_batch(
    outbox: &Outbox,
    db: &PgPool,
    js: &jetstream::Context,
    topology: &Topology,
    metrics: &OutboxMetrics,
) -> anyhow::Result<usize> {
    let mut tx = db.begin().await?;
    let rows: Vec<Unpublished> = sqlx::query_as(sqlx::AssertSqlSafe(outbox.claim_sql()))
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
        sqlx::query(sqlx::AssertSqlSafe(outbox.mark_sql()))
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

async fn update_gauges(outbox: &Outbox, db: &PgPool, metrics: &OutboxMetrics) {
    let row: Result<(i64, Option<f64>), _> =
        sqlx::query_as(sqlx::AssertSqlSafe(outbox.pending_sql()))
            .fetch_one(db)
            .await;
    if let Ok((pending, oldest)) = row {
        metrics.pending.set(pending);
        metrics.oldest_age.set(oldest.unwrap_or(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_name_the_services_table_and_columns() {
        let outbox = Outbox {
            table: "event_outbox",
            columns: Columns {
                created_at: "written_at",
                ..Columns::NAMED_AS_THEY_ARE
            },
            channel: "outbox",
            publishes: Publishes::Events,
        };
        assert_eq!(
            outbox.claim_sql(),
            "SELECT id AS id, kind AS kind, payload AS payload, request_id AS request_id, \
             traceparent AS traceparent FROM event_outbox WHERE published_at IS NULL \
             ORDER BY written_at LIMIT $1 FOR UPDATE SKIP LOCKED"
        );
        assert_eq!(
            outbox.mark_sql(),
            "UPDATE event_outbox SET published_at = now() WHERE id = ANY($1)"
        );
        assert_eq!(
            outbox.pending_sql(),
            "SELECT count(*), extract(epoch FROM now() - min(written_at))::float8 \
             FROM event_outbox WHERE published_at IS NULL"
        );
        let topology = Topology::new(platform::nats::Namespace::new("shop").unwrap());
        assert_eq!(
            outbox.subject(&topology, "account.deleted"),
            "shop.events.account.deleted"
        );
    }
}
