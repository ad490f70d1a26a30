//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder reconciles.
//!
//! The holder renews every third of the lease duration. Another replica takes the lease
//! once `renewTime + leaseDurationSeconds` has passed without a renewal; writes use the
//! Lease's `resourceVersion`, so two replicas can never both win the same takeover. A
//! holder that cannot renew before its lease runs out stops reconciling (the process
//! exits and restarts as a follower), and a holder that shuts down releases the lease so
//! the next one takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::metrics::Metrics;

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Whether the lease can be taken by `me` at `now`.
pub fn free_for(spec: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let Some(MicroTime(renewed)) = &spec.renew_time else { return true };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed.as_second() + duration < now.as_second()
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> LeaderElection {
        LeaderElection { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), duration }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: if ours { previous.and_then(|p| p.acquire_time.clone()) } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the lease; true while we hold it.
    async fn try_hold(&self, metrics: &Metrics) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(self.spec(None, now)),
                };
                metrics.write("Lease", "create");
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                if !free_for(&spec, &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(Some(&spec), now));
                metrics.write("Lease", "update");
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self, metrics: &Metrics) {
        loop {
            match self.try_hold(metrics).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    metrics.leader.set(1);
                    return;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews until the lease is lost; returns then.
    pub async fn hold(&self, metrics: &Metrics) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_hold(metrics).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_renewal.elapsed() >= self.duration {
                        break;
                    }
                }
            }
        }
        metrics.leader.set(0);
        tracing::error!(lease = %self.name, "lost the leader lease");
    }

    /// Gives the lease up so the next replica does not wait for it to expire.
    pub async fn release(&self, metrics: &Metrics) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        metrics.write("Lease", "update");
        if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(error = %e, "could not release the lease");
        }
        metrics.leader.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let at = |s: i64| Timestamp::from_second(s).expect("time");
        let held = LeaseSpec {
            holder_identity: Some("a".into()),
            renew_time: Some(MicroTime(at(1000))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(!free_for(&held, "b", at(1010)), "renewed 10 s ago, lasts 15 s");
        assert!(free_for(&held, "b", at(1016)), "expired");
        assert!(free_for(&held, "a", at(1010)), "ours");
        assert!(free_for(&LeaseSpec::default(), "b", at(0)), "nobody holds it");
    }
}
