//! Exponential backoff, written once: the reconnect and retry loops of the outbox relay, the job
//! consumers, provisioning, the done marker and the revocation watch, and the retry delay of a
//! failed job, all wait `first`, then twice as long each time, never more than `max`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Delays of `first`, `2 × first`, `4 × first` … capped at `max`; [`Backoff::reset`] after a
/// success starts again at `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The delay to wait now; the next call answers twice as much (at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Start again at `first` (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleep [`Backoff::next_delay`], unless `stop` is cancelled first: then `false`.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stop.cancelled() => false,
        }
    }

    /// The delay of try `n` (1-based; 0 counts as 1) without keeping state: `first × 2ⁿ⁻¹`, at
    /// most `max`.
    pub fn nth(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_start_again_after_a_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn the_nth_delay_is_the_one_a_fresh_backoff_gives_on_its_nth_call() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut fresh = b;
        for n in 1..=40 {
            assert_eq!(b.nth(n), fresh.next_delay(), "try {n}");
        }
        assert_eq!(b.nth(0), Duration::from_secs(1));
        assert_eq!(b.nth(u32::MAX), Duration::from_secs(300));
    }

    #[tokio::test]
    async fn a_cancelled_wait_returns_false_at_once() {
        let stop = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        stop.cancel();
        assert!(!b.wait(&stop).await);
    }
}
