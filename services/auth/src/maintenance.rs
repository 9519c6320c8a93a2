//! Housekeeping the scheduler runs (and `auth purge-sessions` by hand): sessions, login counters,
//! published events and jobs, and expired account tokens are kept no longer than their retention
//! (see [`Retention`]).

use jobs::maintenance::AuthJob;
use jobs::runtime::{Handler, Job, JobError};
use platform::db::PurgeMetrics;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::settings::Retention;

/// The `kind` label of `retention_purged_rows_total` for each purged table.
pub const PURGED_KINDS: &[&str] = &[
    "sessions",
    "login_counters",
    "events_outbox",
    "jobs_outbox",
    "account_tokens",
];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub throttles: u64,
    /// Published rows of `event_outbox`.
    pub events: u64,
    /// Published rows of `job_outbox`.
    pub jobs: u64,
    /// Account tokens expired (used or not), and idle reset-request counters.
    pub account_tokens: u64,
}

/// Delete sessions expired or revoked, login counters idle, and outbox events published, longer
/// than their retention before `now` (a session's refresh tokens go with it).
pub async fn purge_expired(
    db: &PgPool,
    retention: &Retention,
    now: OffsetDateTime,
) -> Result<Purged, sqlx::Error> {
    Ok(Purged {
        sessions: crate::store::sessions::purge(db, now, retention.retention_sessions).await?,
        throttles: crate::store::throttle::purge(db, now, retention.retention_login_counters)
            .await?,
        events: crate::store::outbox::purge(
            db,
            crate::store::outbox::EVENT_TABLE,
            now,
            retention.retention_events_outbox,
        )
        .await?,
        jobs: crate::store::outbox::purge(
            db,
            crate::store::outbox::JOB_TABLE,
            now,
            retention.retention_events_outbox,
        )
        .await?,
        // Kept as long as ended sessions: enough to see what happened to a recent link.
        account_tokens: crate::store::account_tokens::purge(db, now, retention.retention_sessions)
            .await?,
    })
}

/// The scheduled `auth.purge_sessions` job.
pub struct PurgeSessions {
    pub db: PgPool,
    pub retention: Retention,
    pub purged: PurgeMetrics,
}

impl Handler for PurgeSessions {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Some(AuthJob::PurgeSessions) = AuthJob::from_kind(&job.kind) else {
            return Err(JobError::unknown_kind(&job.kind));
        };
        let purged = purge_expired(&self.db, &self.retention, OffsetDateTime::now_utc())
            .await
            .map_err(|e| JobError::Retry(format!("database: {e}")))?;
        self.purged.record("sessions", purged.sessions);
        self.purged.record("login_counters", purged.throttles);
        self.purged.record("events_outbox", purged.events);
        self.purged.record("jobs_outbox", purged.jobs);
        self.purged.record("account_tokens", purged.account_tokens);
        tracing::info!(
            sessions = purged.sessions,
            login_counters = purged.throttles,
            events_outbox = purged.events,
            jobs_outbox = purged.jobs,
            account_tokens = purged.account_tokens,
            "purged sessions, login counters, published events and jobs, and expired account \
             tokens past their retention"
        );
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kind_from_a_newer_producer_is_retried_not_dead_lettered() {
        let registry = platform::metrics::Metrics::new("test", "0").unwrap();
        let purge = PurgeSessions {
            // Never connected: an unknown kind is answered before any query.
            db: PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            retention: Retention::default(),
            purged: PurgeMetrics::register(&registry, PURGED_KINDS).unwrap(),
        };
        let job = jobs::runtime::Job {
            id: uuid::Uuid::now_v7(),
            kind: "auth.from_a_newer_worker".into(),
            payload: serde_json::json!({}),
            attempt: 1,
            delivery: 1,
            request_id: None,
            traceparent: None,
        };
        match purge.handle(&job).await {
            Err(JobError::Retry(e)) => assert!(e.contains("auth.from_a_newer_worker"), "{e}"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}
