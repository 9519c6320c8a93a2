//! Leader election through a Kubernetes `coordination.k8s.io/v1` Lease: one holder at a time,
//! renewed every third of its duration, taken over once a holder has not renewed for a whole
//! duration. Writes use the Lease's `resourceVersion`, so two candidates racing for it cannot
//! both win. Outside a cluster there is no Lease ([`LeaseLock::in_cluster`] answers `None`) and
//! callers fall back to being the single local leader.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// What a candidate should do with the Lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it over.
    TakeOver,
    /// Someone else holds it and renews it: wait.
    Wait,
}

/// The decision for `identity` at `now`, from the Lease's spec (`None`: no Lease).
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let expired = spec.renew_time.as_ref().is_none_or(|renewed| {
                renewed
                    .0
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(duration))
                    .is_ok_and(|until| until < now)
            });
            if expired {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    /// The Lease `name` in the pod's namespace, held as `identity` (the pod name). `None` when
    /// not running in a cluster.
    pub async fn in_cluster(name: &str, identity: &str, duration: Duration) -> Option<LeaseLock> {
        let client = match kube::Client::try_default().await {
            Ok(client) => client,
            Err(e) => {
                tracing::info!(reason = %e, "not in a Kubernetes cluster: no Lease election");
                return None;
            }
        };
        // The Downward API's namespace when the chart sets it, else the service account's.
        let namespace = std::env::var("POD_NAMESPACE")
            .unwrap_or_else(|_| client.default_namespace().to_owned());
        Some(LeaseLock::with_client(
            client, &namespace, name, identity, duration,
        ))
    }

    /// A Lease through a given client (tests point one at a fake API server).
    pub fn with_client(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Try to hold the Lease (create, renew or take over). `Ok(true)` while we hold it.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let result = match (decision, current) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew | Decision::TakeOver, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(MicroTime(now));
                // `resourceVersion` is kept: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::Renew | Decision::TakeOver, None) => return Ok(false),
        };
        match result {
            Ok(_) => Ok(true),
            // Someone else wrote first (409 conflict, or 409 already exists on create).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_is_respected_and_an_expired_one_taken_over() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&held("a", 3)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&held("a", 300)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&held("b", 3)), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&held("b", 16)), "a", now), Decision::TakeOver);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", now),
            Decision::TakeOver
        );
        let never_renewed = LeaseSpec {
            holder_identity: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(decide(Some(&never_renewed), "a", now), Decision::TakeOver);
    }
}
