//! Who runs the scheduler: in Kubernetes the holder of the Lease `SCHEDULER_LEASE_NAME`, outside
//! one every worker (`LocalLeader`; the slot-derived job ids make extra schedulers harmless).

use std::sync::Arc;
use std::time::Instant;

use jobs::schedule::Leadership;
use platform::lease::LeaseLock;
use tokio_util::sync::CancellationToken;

pub struct KubeLeader {
    pub lock: Arc<LeaseLock>,
}

impl Leadership for KubeLeader {
    async fn lead(&self, stop: &CancellationToken) -> CancellationToken {
        let period = self.lock.duration() / 3;
        loop {
            match self.lock.try_hold().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "reading the scheduler Lease failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.cancelled() => return stop.child_token(),
            }
        }
        tracing::info!("holding the scheduler Lease: this worker schedules");
        let leading = stop.child_token();
        let (token, lock) = (leading.clone(), self.lock.clone());
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = token.cancelled() => return,
                }
                match lock.try_hold().await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!("the scheduler Lease was taken over; no longer scheduling");
                        break;
                    }
                    // Transient API trouble: keep leading while the Lease is surely still ours.
                    Err(e) if renewed.elapsed() < lock.duration() * 2 / 3 => {
                        tracing::warn!(error = %e, "renewing the scheduler Lease failed; retrying");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the scheduler Lease; stepping down");
                        break;
                    }
                }
            }
            token.cancel();
        });
        leading
    }
}
