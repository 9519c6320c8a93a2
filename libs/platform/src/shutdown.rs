//! Graceful shutdown and the ownership of background tasks.
//!
//! One [`Shutdown`] per process: SIGTERM or SIGINT cancels its token, which turns readiness
//! false, stops the listeners accepting and tells every background task to finish. Tasks are
//! spawned through it so that none is forgotten: the process waits for all of them (up to the
//! grace period) before it exits, and a task that fails is logged.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when shutdown begins; background loops `select!` on `token.cancelled()`.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Begin shutdown (what a signal does; tests call it directly).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Run a background task owned by this process. Its error is logged with its name.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(async move {
            match task.await {
                Ok(()) => tracing::debug!(task = name, "background task finished"),
                Err(e) => tracing::error!(
                    task = name,
                    error = format!("{e:#}"),
                    "background task failed"
                ),
            }
        });
    }

    /// Wait for every spawned task, for at most `grace`. Returns whether all finished.
    pub async fn wait_for_tasks(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Trigger shutdown on SIGTERM or SIGINT. Runs until one arrives or shutdown starts otherwise.
    pub async fn listen_for_signals(&self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
            _ = terminate => tracing::info!("SIGTERM received, shutting down"),
            _ = self.token.cancelled() => return,
        }
        self.trigger();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn triggering_stops_background_tasks_and_waits_for_them() {
        let shutdown = Shutdown::new();
        let cleaned_up = Arc::new(AtomicBool::new(false));
        let token = shutdown.token();
        let flag = cleaned_up.clone();
        shutdown.spawn("ticker", async move {
            token.cancelled().await;
            // Finishing work after the signal is allowed, within the grace period.
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        shutdown.trigger();
        assert!(shutdown.wait_for_tasks(Duration::from_secs(2)).await);
        assert!(cleaned_up.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_signal_is_abandoned_after_the_grace_period() {
        let shutdown = Shutdown::new();
        shutdown.spawn("stubborn", async {
            std::future::pending::<()>().await;
            Ok(())
        });
        shutdown.trigger();
        assert!(!shutdown.wait_for_tasks(Duration::from_millis(100)).await);
    }
}
