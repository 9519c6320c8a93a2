use std::fmt;
use std::str::FromStr;

/// Where a background job stands, as its status events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    /// `succeeded` or `dead`: the job is finished, unless a `dead` one is replayed (see
    /// [`JobProgress::can_become`]).
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Dead)
    }

    /// Order within one attempt: `queued < running < succeeded | failed | dead`.
    fn rank(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Dead => 2,
        }
    }

    /// The statuses ranked below this one within an attempt (what the store's UPDATE may replace
    /// at the same attempt count).
    pub fn ranked_below(self) -> Vec<&'static str> {
        JobStatus::ALL
            .into_iter()
            .filter(|s| s.rank() < self.rank())
            .map(JobStatus::as_str)
            .collect()
    }

    /// The final statuses, as stored.
    pub fn finals() -> Vec<&'static str> {
        JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(JobStatus::as_str)
            .collect()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a job status"))
    }
}

/// A job's status and the attempt (delivery) that reported it.
///
/// Status events reach catalog-order out of order (two replicas share the events consumer, and a
/// redelivered event comes after the ones that followed it), so a job only moves forward:
///
/// - nothing follows `succeeded`;
/// - `succeeded` follows any other status (`dead` included), whatever attempt reports it: attempts
///   overlap (one that outlives its `ack_wait` is redelivered while it still runs), and a job's
///   `succeeded` event has a single id, so one refused for its attempt count would never come
///   again (a replay that finds the effect done repeats that same event);
/// - `dead` ends a run, not the job: `worker dlq replay` starts a new run whose attempts continue
///   after the dead run's, so only a strictly later attempt follows `dead` (a late event of the
///   dead run, or of an older attempt, never revives it);
/// - `dead` follows any other status of the same or a later attempt; one from an older attempt
///   than the stored status is the dead run's, arriving after its replay began, and changes
///   nothing;
/// - otherwise a later attempt follows an earlier one (`running` after `failed` needs a higher
///   attempt count, and an older attempt's event never overwrites a newer one's status), and
///   within one attempt `queued < running < failed`.
///
/// `store::jobs::apply_event` enforces the same rule in its `UPDATE … WHERE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobProgress {
    pub attempts: u32,
    pub status: JobStatus,
}

impl JobProgress {
    pub fn new(attempts: u32, status: JobStatus) -> JobProgress {
        JobProgress { attempts, status }
    }

    /// Whether `next` may replace this progress.
    pub fn can_become(self, next: JobProgress) -> bool {
        use JobStatus::{Dead, Succeeded};
        match (self.status, next.status) {
            (Succeeded, _) => false,
            (_, Succeeded) => true,
            (Dead, _) => self.attempts < next.attempts,
            (_, Dead) => self.attempts <= next.attempts,
            _ => {
                self.attempts < next.attempts
                    || (self.attempts == next.attempts && self.status.rank() < next.status.rank())
            }
        }
    }
}

impl fmt::Display for JobProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.status, self.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::{JobProgress, JobStatus};

    fn at(attempts: u32, status: JobStatus) -> JobProgress {
        JobProgress::new(attempts, status)
    }

    #[test]
    fn statuses_read_back_as_written() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!("done".parse::<JobStatus>().is_err());
        assert_eq!(at(2, Failed).to_string(), "failed(2)");
    }

    #[test]
    fn an_attempt_moves_from_queued_to_running_to_an_outcome() {
        assert!(at(0, Queued).can_become(at(1, Running)));
        assert!(at(1, Running).can_become(at(1, Succeeded)));
        assert!(at(1, Running).can_become(at(1, Failed)));
        assert!(at(1, Running).can_become(at(1, Dead)));
        assert!(!at(1, Running).can_become(at(1, Running)), "no change");
        assert!(!at(1, Failed).can_become(at(1, Running)));
        assert!(!at(1, Running).can_become(at(1, Queued)));
    }

    #[test]
    fn succeeded_is_final() {
        for next in JobStatus::ALL {
            for attempts in [1, 2, 9] {
                assert!(
                    !at(2, Succeeded).can_become(at(attempts, next)),
                    "succeeded → {next}({attempts})"
                );
            }
        }
    }

    #[test]
    fn only_a_later_attempt_a_replay_follows_dead() {
        for next in [Queued, Running, Failed, Dead] {
            for attempts in [1, 2] {
                assert!(
                    !at(2, Dead).can_become(at(attempts, next)),
                    "dead(2) → {next}({attempts})"
                );
            }
            assert!(at(2, Dead).can_become(at(3, next)), "dead(2) → {next}(3)");
        }
    }

    #[test]
    fn a_dead_from_an_older_attempt_does_not_end_a_replayed_run() {
        assert!(!at(4, Running).can_become(at(3, Dead)));
        assert!(!at(5, Failed).can_become(at(3, Dead)));
        assert!(at(3, Running).can_become(at(3, Dead)));
        assert!(at(3, Failed).can_become(at(3, Dead)));
        assert!(at(2, Failed).can_become(at(3, Dead)));
    }

    #[test]
    fn a_retry_follows_a_failed_attempt_only_with_a_higher_attempt_count() {
        assert!(at(1, Failed).can_become(at(2, Running)));
        assert!(at(1, Failed).can_become(at(2, Failed)));
        assert!(!at(2, Failed).can_become(at(1, Running)));
        assert!(!at(2, Running).can_become(at(1, Failed)));
        assert!(!at(2, Running).can_become(at(1, Running)));
    }

    #[test]
    fn success_ends_the_job_whichever_attempt_reports_it() {
        assert!(at(3, Running).can_become(at(2, Succeeded)));
        assert!(at(3, Failed).can_become(at(1, Succeeded)));
        // The effect happened (a replay would find its done marker and repeat this very event,
        // which the inbox drops): the job is succeeded, not dead.
        assert!(at(3, Dead).can_become(at(2, Succeeded)));
    }

    #[test]
    fn applying_events_in_any_order_ends_at_the_last_status() {
        // A job that failed once, then succeeded: every order of its events ends `succeeded`.
        let history = [
            at(1, Running),
            at(1, Failed),
            at(2, Running),
            at(2, Succeeded),
        ];
        for order in permutations(&history) {
            let end =
                order.iter().fold(
                    at(0, Queued),
                    |now, &next| {
                        if now.can_become(next) { next } else { now }
                    },
                );
            assert_eq!(end, at(2, Succeeded), "{order:?}");
        }
    }

    #[test]
    fn a_replayed_job_ends_at_its_replays_outcome_in_any_order() {
        // Dead after 2 attempts, replayed: attempt 3 failed, attempt 4 succeeded. Every order of
        // the replay's events after `dead` ends `succeeded`, however the dead run's events interleave.
        let replay = [
            at(3, Running),
            at(3, Failed),
            at(4, Running),
            at(4, Succeeded),
            at(1, Running),
            at(2, Failed),
            at(2, Dead),
        ];
        for order in permutations(&replay) {
            let end = order.iter().fold(
                at(2, Dead),
                |now, &next| {
                    if now.can_become(next) { next } else { now }
                },
            );
            assert_eq!(end.status, Succeeded, "{order:?}");
        }
    }

    fn permutations(items: &[JobProgress]) -> Vec<Vec<JobProgress>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }
}
