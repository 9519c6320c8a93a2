//! The scheduler's Kubernetes leadership against a fake API server: leading starts once the
//! Lease is held and stops within one renew period of losing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs::schedule::Leadership;
use platform::lease::LeaseLock;
use testkit::FakeLeaseApi;
use tokio_util::sync::CancellationToken;
use worker::leader::KubeLeader;

#[tokio::test]
async fn leadership_ends_within_one_renew_period_of_losing_the_lease() {
    let api = FakeLeaseApi::start().await;
    let duration = Duration::from_secs(3);
    let leader = KubeLeader {
        lock: Arc::new(LeaseLock::with_client(
            api.client("shop"),
            "shop",
            "scheduler",
            "worker-a",
            duration,
        )),
    };
    let stop = CancellationToken::new();
    let leading = tokio::time::timeout(Duration::from_secs(5), leader.lead(&stop))
        .await
        .expect("a free Lease is acquired at once");
    assert!(!leading.is_cancelled());
    assert_eq!(api.holder("scheduler").as_deref(), Some("worker-a"));

    // Still leading after several renewals.
    tokio::time::sleep(duration * 2).await;
    assert!(!leading.is_cancelled(), "renewals keep the leadership");

    api.steal("scheduler", "worker-b");
    let lost_at = Instant::now();
    tokio::time::timeout(duration, leading.cancelled())
        .await
        .expect("leadership ends within one renew period");
    assert!(lost_at.elapsed() <= duration / 3 + Duration::from_millis(500));

    // A second candidate waits while the first leads.
    let other = KubeLeader {
        lock: Arc::new(LeaseLock::with_client(
            api.client("shop"),
            "shop",
            "scheduler",
            "worker-c",
            duration,
        )),
    };
    let waiting = tokio::time::timeout(Duration::from_millis(1500), other.lead(&stop)).await;
    assert!(
        waiting.is_err(),
        "worker-c must not lead while worker-b holds the Lease"
    );
    stop.cancel();
}
