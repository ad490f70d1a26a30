//! Live connections as Prometheus gauges, for an HPA (through an adapter) or KEDA's
//! Prometheus scaler to scale on (`autoscaling.mode: external`), and for dashboards:
//!
//! - `socketfleet_operator_fleet_connections{fleet_namespace,fleet}`: connections the
//!   fleet's sidecars reported in the last pass (every 5 s while autoscaling is enabled);
//! - `socketfleet_operator_fleet_unknown_pods{fleet_namespace,fleet}`: gateway pods whose
//!   sidecar did not answer (their connections are missing from the total);
//! - `socketfleet_operator_fleet_wanted_pods{fleet_namespace,fleet}`: what the builtin rule
//!   would ask for, ceil((connections + buffer) / targetConnectionsPerPod) within min..max;
//! - `socketfleet_operator_gateway_pod_connections{fleet_namespace,fleet,gateway_pod}`.
//!
//! The labels are not `namespace` and `pod`: Prometheus's Kubernetes discovery gives every
//! scraped series those of the operator's own pod, and would rename ours.
//!
//! Only the leader reconciles, so only the leader exports them. The series of a pod that is
//! gone are removed at the next pass; those of a fleet that was deleted (no pass tells of
//! that) are removed when they were not refreshed for [`STALE_AFTER`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use socketfleet_api::autoscale::{PodLoad, Policy, wanted_for};

/// Three missed passes of a settled fleet.
pub const STALE_AFTER: Duration = Duration::from_secs(180);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetLabels {
    pub fleet_namespace: String,
    pub fleet: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodLabels {
    pub fleet_namespace: String,
    pub fleet: String,
    pub gateway_pod: String,
}

#[derive(Default)]
pub struct FleetMetrics {
    connections: Family<FleetLabels, Gauge>,
    unknown: Family<FleetLabels, Gauge>,
    wanted: Family<FleetLabels, Gauge>,
    pod_connections: Family<PodLabels, Gauge>,
    /// Per fleet: when it was last set and the pods it has series for.
    seen: Mutex<HashMap<FleetLabels, (Instant, Vec<String>)>>,
}

impl FleetMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register("fleet_connections", "Live connections of a fleet's gateway pods", self.connections.clone());
        r.register("fleet_unknown_pods", "Gateway pods whose sidecar did not report its connections", self.unknown.clone());
        r.register("fleet_wanted_pods", "Gateway pods the connection count asks for, within min..max", self.wanted.clone());
        r.register("gateway_pod_connections", "Live connections of one gateway pod", self.pod_connections.clone());
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<FleetLabels, (Instant, Vec<String>)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets a fleet's gauges from one pass's pods (`connections` None: the sidecar did not
    /// answer); drops the series of pods no longer there.
    pub fn set(&self, namespace: &str, fleet: &str, pods: &[PodLoad], policy: &Policy) {
        let fleet = FleetLabels { fleet_namespace: namespace.into(), fleet: fleet.into() };
        let pod_labels =
            |pod: &str| PodLabels { fleet_namespace: fleet.fleet_namespace.clone(), fleet: fleet.fleet.clone(), gateway_pod: pod.into() };
        let known: Vec<(&str, u64)> = pods.iter().filter_map(|p| Some((p.name.as_str(), p.connections?))).collect();
        let total: u64 = known.iter().map(|(_, c)| c).sum();
        self.connections.get_or_create(&fleet).set(total as i64);
        self.unknown.get_or_create(&fleet).set((pods.len() - known.len()) as i64);
        self.wanted.get_or_create(&fleet).set(wanted_for(policy, total) as i64);
        for (pod, c) in &known {
            self.pod_connections.get_or_create(&pod_labels(pod)).set(*c as i64);
        }
        let now: Vec<String> = known.iter().map(|(p, _)| p.to_string()).collect();
        let before = self.seen().insert(fleet.clone(), (Instant::now(), now.clone()));
        for pod in before.map(|(_, pods)| pods).unwrap_or_default() {
            if !now.contains(&pod) {
                self.pod_connections.remove(&pod_labels(&pod));
            }
        }
    }

    /// Removes every series of fleets not set for `STALE_AFTER`.
    pub fn prune(&self) {
        let mut seen = self.seen();
        let stale: Vec<FleetLabels> = seen.iter().filter(|(_, (at, _))| at.elapsed() >= STALE_AFTER).map(|(f, _)| f.clone()).collect();
        for fleet in stale {
            if let Some((_, pods)) = seen.remove(&fleet) {
                for pod in pods {
                    let labels = PodLabels { fleet_namespace: fleet.fleet_namespace.clone(), fleet: fleet.fleet.clone(), gateway_pod: pod };
                    self.pod_connections.remove(&labels);
                }
            }
            self.connections.remove(&fleet);
            self.unknown.remove(&fleet);
            self.wanted.remove(&fleet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use socketfleet_api::autoscale::PodDrain;

    const POLICY: Policy = Policy { target_per_pod: 25, buffer: 0, min: 1, max: 10, stabilization_ms: 0, drain_timeout_ms: 0 };

    fn pod(name: &str, connections: Option<u64>) -> PodLoad {
        PodLoad { name: name.into(), ready: true, connections, drain: PodDrain::None }
    }

    fn render(m: &FleetMetrics) -> String {
        let mut r = Registry::with_prefix("socketfleet_operator");
        m.register(&mut r);
        let mut out = String::new();
        encode(&mut out, &r).expect("encodes");
        out
    }

    #[test]
    fn a_fleet_exports_its_total_and_each_pod_and_forgets_pods_that_went() {
        let m = FleetMetrics::default();
        m.set("demo", "chat", &[pod("gw-a", Some(30)), pod("gw-b", Some(12)), pod("gw-c", None)], &POLICY);
        let text = render(&m);
        assert!(text.contains(r#"socketfleet_operator_fleet_connections{fleet_namespace="demo",fleet="chat"} 42"#), "{text}");
        assert!(text.contains(r#"socketfleet_operator_fleet_unknown_pods{fleet_namespace="demo",fleet="chat"} 1"#), "{text}");
        assert!(text.contains(r#"socketfleet_operator_fleet_wanted_pods{fleet_namespace="demo",fleet="chat"} 2"#), "{text}");
        assert!(
            text.contains(r#"socketfleet_operator_gateway_pod_connections{fleet_namespace="demo",fleet="chat",gateway_pod="gw-b"} 12"#),
            "{text}"
        );
        assert!(!text.contains(r#"gateway_pod="gw-c""#), "an unknown pod has no series, not a zero: {text}");

        m.set("demo", "chat", &[pod("gw-b", Some(40))], &POLICY);
        let text = render(&m);
        assert!(!text.contains(r#"gateway_pod="gw-a""#), "a pod that went has no series: {text}");
        assert!(text.contains(r#"fleet_connections{fleet_namespace="demo",fleet="chat"} 40"#), "{text}");
    }

    #[test]
    fn a_fleet_not_refreshed_is_pruned() {
        let m = FleetMetrics::default();
        m.set("demo", "gone", &[pod("gw-a", Some(3))], &POLICY);
        m.prune();
        assert!(render(&m).contains(r#"fleet="gone""#), "fresh series stay");
        // Age it past the limit rather than sleeping three minutes.
        for (at, _) in m.seen().values_mut() {
            *at = Instant::now().checked_sub(STALE_AFTER).expect("the clock is past three minutes");
        }
        m.prune();
        let text = render(&m);
        assert!(!text.contains(r#"fleet="gone""#), "{text}");
    }
}
