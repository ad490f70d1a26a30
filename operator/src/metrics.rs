//! The operator's Prometheus registry (prefix `socketfleet_operator`).
//!
//! `api_writes_total{kind,verb}` counts every write the operator makes (applies, deletes,
//! status patches, events, lease renewals): a settled fleet must leave it flat except for
//! the leader lease. The fleets' live connections are [`crate::fleet_metrics`]'s.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::fleet_metrics::FleetMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<ReasonLabel, Counter>,
    pub reconcile_seconds: Histogram,
    pub api_writes: Family<WriteLabels, Counter>,
    pub redis_actions: Family<ReasonLabel, Counter>,
    pub leader: Gauge,
    pub fleets: FleetMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::with_prefix("socketfleet_operator");
        let m = Metrics {
            reconciles: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            api_writes: Family::default(),
            redis_actions: Family::default(),
            leader: Gauge::default(),
            fleets: FleetMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut root;
        r.register("reconciles", "Reconciles run", m.reconciles.clone());
        r.register("reconcile_errors", "Reconciles that failed, by reason", m.reconcile_errors.clone());
        r.register("reconcile_duration_seconds", "Time per reconcile", m.reconcile_seconds.clone());
        r.register("api_writes", "Write requests to the Kubernetes API, by kind and verb", m.api_writes.clone());
        r.register("redis_actions", "Redis Cluster admin actions, by reason", m.redis_actions.clone());
        r.register("leader", "1 while this replica holds the leader lease", m.leader.clone());
        m.fleets.register(r);
        Metrics { registry: root, ..m }
    }

    pub fn write(&self, kind: &str, verb: &'static str) {
        self.api_writes.get_or_create(&WriteLabels { kind: kind.to_string(), verb }).inc();
    }

    pub fn render(&self) -> String {
        self.fleets.prune();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
