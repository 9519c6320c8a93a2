//! auth's own metrics (docs/design.md §7).

use platform::metrics::Metrics;
use prometheus::{IntCounter, IntCounterVec, Opts};

#[derive(Clone)]
pub struct AuthMetrics {
    logins: IntCounterVec,
    pub refresh_reuse: IntCounter,
    slowed: IntCounter,
}

/// Every outcome a login can have; the label never takes another value.
pub const LOGIN_OUTCOMES: [&str; 4] = ["success", "invalid_credentials", "throttled", "disabled"];

impl AuthMetrics {
    pub fn register(metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let logins = IntCounterVec::new(
            Opts::new("auth_logins_total", "Login attempts, by outcome."),
            &["outcome"],
        )?;
        let refresh_reuse = IntCounter::new(
            "auth_refresh_reuse_total",
            "Refresh tokens presented a second time (theft or a broken client); each revokes a session.",
        )?;
        metrics.register(Box::new(logins.clone()))?;
        let slowed = IntCounter::new(
            "auth_login_slowed_total",
            "Login attempts delayed by the per-email slow-down (recent failures at the email from any address).",
        )?;
        metrics.register(Box::new(refresh_reuse.clone()))?;
        metrics.register(Box::new(slowed.clone()))?;
        // Export every outcome from the start, so rates and alerts see zeros, not gaps.
        for outcome in LOGIN_OUTCOMES {
            logins.with_label_values(&[outcome]);
        }
        Ok(AuthMetrics {
            logins,
            refresh_reuse,
            slowed,
        })
    }

    pub fn login(&self, outcome: &'static str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    pub fn login_slowed(&self) {
        self.slowed.inc();
    }
}
