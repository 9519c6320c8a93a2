//! The scheduler's jobs for catalog data (family `catalog`): cancel unpaid orders past their
//! payment window, and forget expired `Idempotency-Key`s.

use std::time::Duration;

use jobs::runtime::{Handler, Job, JobError};
use jobs::schedule::{EXPIRE_ORDERS, PURGE_IDEMPOTENCY_KEYS};
use sqlx::PgPool;

use crate::store;

pub struct Maintenance {
    pub db: PgPool,
    pub order_payment_timeout: Duration,
}

impl Handler for Maintenance {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        // A database error is worth another attempt; the statements are idempotent.
        let retry = |e: sqlx::Error| JobError::Retry(format!("database: {e}"));
        match job.kind.as_str() {
            EXPIRE_ORDERS => {
                let n = store::orders::expire_unpaid(&self.db, self.order_payment_timeout)
                    .await
                    .map_err(retry)?;
                tracing::info!(orders = n, "expired unpaid orders");
            }
            PURGE_IDEMPOTENCY_KEYS => {
                let n = store::idempotency::purge_expired(&self.db)
                    .await
                    .map_err(retry)?;
                tracing::info!(keys = n, "purged expired idempotency keys");
            }
            other => return Err(JobError::Fail(format!("unknown job kind {other}"))),
        }
        Ok(())
    }
}
