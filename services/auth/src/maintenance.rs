//! Housekeeping the scheduler runs (and `auth purge-sessions` by hand).

use jobs::runtime::{Handler, Job, JobError};
use jobs::schedule::PURGE_SESSIONS;
use sqlx::PgPool;

/// Sessions expired or revoked longer ago than this are deleted.
pub const PURGE_GRACE: time::Duration = time::Duration::days(1);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub throttles: u64,
}

/// Delete expired and long-revoked sessions (and their refresh tokens), and idle login counters.
pub async fn purge_expired(db: &PgPool) -> Result<Purged, sqlx::Error> {
    Ok(Purged {
        sessions: crate::store::sessions::purge(db, PURGE_GRACE).await?,
        throttles: crate::store::throttle::purge(db).await?,
    })
}

/// The scheduled `auth.purge_sessions` job.
pub struct PurgeSessions {
    pub db: PgPool,
}

impl Handler for PurgeSessions {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        if job.kind != PURGE_SESSIONS {
            return Err(JobError::Fail(format!("unknown job kind {}", job.kind)));
        }
        let purged = purge_expired(&self.db)
            .await
            .map_err(|e| JobError::Retry(format!("database: {e}")))?;
        tracing::info!(
            sessions = purged.sessions,
            throttles = purged.throttles,
            "purged expired sessions"
        );
        Ok(())
    }
}
