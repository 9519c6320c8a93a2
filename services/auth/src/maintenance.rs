//! Housekeeping the scheduler runs (and `auth purge-sessions` by hand).

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
