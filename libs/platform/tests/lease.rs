//! Lease election against a fake API server with the real server's concurrency rules: acquire,
//! renew, wait while another holds it, take over once it expires, and notice the loss.
#![cfg(feature = "lease")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use platform::lease::LeaseLock;
use testkit::FakeLeaseApi;

#[tokio::test]
async fn one_holder_renews_the_other_waits_then_takes_over_after_expiry() {
    let api = FakeLeaseApi::start().await;
    let lease = |who: &str| {
        LeaseLock::with_client(
            api.client("shop"),
            "shop",
            "scheduler",
            who,
            Duration::from_secs(2),
        )
    };
    let (a, b) = (lease("worker-a"), lease("worker-b"));

    assert!(a.try_hold().await.unwrap(), "a creates and holds it");
    assert_eq!(api.holder("scheduler").as_deref(), Some("worker-a"));
    assert!(!b.try_hold().await.unwrap(), "b waits while a renews");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(a.try_hold().await.unwrap(), "a renews");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!b.try_hold().await.unwrap(), "a's renewal keeps b out");

    // a stops renewing (it died): after the whole duration b takes over, and a has lost it.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        b.try_hold().await.unwrap(),
        "b takes the expired lease over"
    );
    assert_eq!(api.holder("scheduler").as_deref(), Some("worker-b"));
    assert!(
        !a.try_hold().await.unwrap(),
        "a comes back and finds it lost"
    );
    assert!(b.try_hold().await.unwrap(), "b renews");
}

#[tokio::test]
async fn two_candidates_racing_for_a_free_lease_cannot_both_win() {
    let api = FakeLeaseApi::start().await;
    let candidates: Vec<LeaseLock> = (0..8)
        .map(|i| {
            LeaseLock::with_client(
                api.client("shop"),
                "shop",
                "race",
                &format!("worker-{i}"),
                Duration::from_secs(15),
            )
        })
        .collect();
    let results = futures_util::future::join_all(candidates.iter().map(|c| c.try_hold())).await;
    let winners = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
}
