//! The status step: a fleet's status derived only from what the operator applied and read
//! back. Pure, so every condition and reason is unit-tested.
//!
//! Conditions (reasons are a fixed set, see [`Reason`]):
//! - `RedisReady`: Redis serves every slot (cluster), its pods are ready (sentinel), or it is
//!   external (not checked from here);
//! - `Ready`: RedisReady and every desired gateway pod is ready;
//! - `Progressing`: something is still being created or rolled out;
//! - `Degraded`: an error, an invalid spec, or Redis lost coverage after having had it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::redis_cluster::Report;
use crate::redis_cluster::nodes::SLOTS;
use socketfleet_api::crd::{AutoscalerStatus, GatewayStatus, RedisStatus, SocketFleetStatus};

/// Every reason a condition can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    FleetReady,
    GatewayPodsNotReady,
    RedisNotReady,
    RedisPodsPending,
    RedisBootstrapping,
    RedisClusterHealthy,
    RedisSlotsUncovered,
    RedisReplicasSyncing,
    RedisPodsReady,
    ExternalRedis,
    RollingOut,
    Stable,
    NoErrors,
    AutoscalerScaleDown,
    NoDrain,
    /// An error's own reason (`Error::reason`).
    Error(&'static str),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FleetReady => "FleetReady",
            Reason::GatewayPodsNotReady => "GatewayPodsNotReady",
            Reason::RedisNotReady => "RedisNotReady",
            Reason::RedisPodsPending => "RedisPodsPending",
            Reason::RedisBootstrapping => "RedisBootstrapping",
            Reason::RedisClusterHealthy => "RedisClusterHealthy",
            Reason::RedisSlotsUncovered => "RedisSlotsUncovered",
            Reason::RedisReplicasSyncing => "RedisReplicasSyncing",
            Reason::RedisPodsReady => "RedisPodsReady",
            Reason::ExternalRedis => "ExternalRedis",
            Reason::RollingOut => "RollingOut",
            Reason::Stable => "Stable",
            Reason::NoErrors => "NoErrors",
            Reason::AutoscalerScaleDown => "AutoscalerScaleDown",
            Reason::NoDrain => "NoDrain",
            Reason::Error(r) => r,
        }
    }
}

/// What the gateway Deployment reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayObserved {
    pub desired: i32,
    /// Gateway pods that exist (the Deployment's `status.replicas`).
    pub existing: i32,
    pub ready: i32,
    pub updated: i32,
    pub selector: String,
    pub connections: i64,
    /// Pods the autoscaler is draining away (counted in `desired`, not expected ready).
    pub draining: i32,
}

/// What the Redis side reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisObserved {
    External,
    /// Cluster mode: pods asked for and ready, and the last admin pass (None before pods
    /// have addresses).
    Cluster {
        pods: i32,
        ready_pods: i32,
        report: Option<Report>,
        /// Pods kept beyond the spec's while their slots move away (a scale-in).
        kept: Option<i32>,
        /// Publishes are durable: Redis is ready only once every primary has a replica
        /// in sync.
        durable: bool,
    },
    Sentinel {
        pods: i32,
        ready_pods: i32,
    },
}

/// Everything the status is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub generation: Option<i64>,
    pub gateway: GatewayObserved,
    pub redis: RedisObserved,
    /// The reconcile error, as (reason, message).
    pub error: Option<(&'static str, String)>,
}

fn condition(
    prev: Option<&SocketFleetStatus>,
    type_: &str,
    ok: bool,
    reason: Reason,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    // The transition time moves only when the status flips.
    let since = prev
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.as_str().into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

fn redis_status(o: &RedisObserved) -> (RedisStatus, bool, Reason, String) {
    match o {
        RedisObserved::External => (
            RedisStatus { summary: "external".into(), cluster_state: "external".into(), ..RedisStatus::default() },
            true,
            Reason::ExternalRedis,
            "the sidecars use the external Redis; the operator does not manage it".into(),
        ),
        RedisObserved::Sentinel { pods, ready_pods } => {
            let ok = ready_pods >= pods && *pods > 0;
            let s = RedisStatus {
                summary: format!("sentinel {ready_pods}/{pods}"),
                primaries: i32::from(*ready_pods > 0),
                replicas: (ready_pods - 1).max(0),
                cluster_state: if ok { "ok" } else { "pending" }.into(),
                ready_pods: *ready_pods,
                pods: *pods,
                ..RedisStatus::default()
            };
            let (reason, msg) = if ok {
                (Reason::RedisPodsReady, "every Redis pod is ready".to_string())
            } else {
                (Reason::RedisPodsPending, format!("{ready_pods} of {pods} Redis pods are ready"))
            };
            (s, ok, reason, msg)
        }
        RedisObserved::Cluster { pods, ready_pods, report, kept, durable } => {
            let mut s = RedisStatus {
                pods: *pods,
                ready_pods: *ready_pods,
                kept_pods: *kept,
                cluster_state: "pending".into(),
                ..RedisStatus::default()
            };
            let Some(r) = report else {
                s.summary = format!("cluster pending {ready_pods}/{pods}");
                return (
                    s,
                    false,
                    Reason::RedisPodsPending,
                    format!("{ready_pods} of {pods} Redis pods are running; waiting for all to bootstrap the cluster"),
                );
            };
            s.primaries = r.primaries as i32;
            s.replicas = r.replicas as i32;
            s.slots_covered = r.slots_covered as i32;
            s.cluster_state = r.cluster_state.clone();
            let served = r.slots_covered == SLOTS as usize && r.cluster_state == "ok";
            let unguarded = if *durable { r.primaries_without_replica } else { 0 };
            let ok = served && unguarded == 0;
            s.summary = format!("cluster {} {}/{} slots", r.cluster_state, r.slots_covered, SLOTS);
            let (reason, msg) = if served && unguarded > 0 {
                (
                    Reason::RedisReplicasSyncing,
                    format!("{unguarded} primaries have no replica in sync yet; durable publishes to them would be refused"),
                )
            } else if ok && r.converged {
                (Reason::RedisClusterHealthy, format!("{} primaries and {} replicas serve all {SLOTS} slots", r.primaries, r.replicas))
            } else if ok {
                (Reason::RedisClusterHealthy, format!("all {SLOTS} slots are served; replicas still attaching ({} of them)", r.replicas))
            } else if r.slots_covered == 0 {
                (Reason::RedisBootstrapping, format!("creating the cluster ({} pods unreachable)", r.unreachable.len()))
            } else {
                (Reason::RedisSlotsUncovered, format!("{} of {SLOTS} slots are not served", SLOTS as usize - r.slots_covered))
            };
            (s, ok, reason, msg)
        }
    }
}

/// `Draining` (builtin autoscaler): True while it drains a pod before removing it.
pub fn draining_condition(prev: Option<&SocketFleetStatus>, a: &AutoscalerStatus, generation: Option<i64>, now: Timestamp) -> Condition {
    match &a.draining {
        Some(d) => condition(prev, "Draining", true, Reason::AutoscalerScaleDown, format!("{}: {}", d.pod, a.reason), generation, now),
        None => condition(prev, "Draining", false, Reason::NoDrain, "no pod is being drained".into(), generation, now),
    }
}

/// The fleet's status from what was observed. `prev` keeps transition times stable.
pub fn derive(prev: Option<&SocketFleetStatus>, o: &Observed, now: Timestamp) -> SocketFleetStatus {
    let g = &o.gateway;
    let (redis, redis_ok, redis_reason, redis_msg) = redis_status(&o.redis);
    let serving = g.desired - g.draining;
    let gateway_ok = g.ready >= serving && serving > 0;
    let (ready, ready_reason, ready_msg) = match (&o.error, redis_ok, gateway_ok) {
        (Some((reason, msg)), _, _) => (false, Reason::Error(reason), msg.clone()),
        (None, false, _) => (false, Reason::RedisNotReady, redis_msg.clone()),
        (None, true, false) => (false, Reason::GatewayPodsNotReady, format!("{} of {} gateway pods are ready", g.ready, serving)),
        (None, true, true) => (true, Reason::FleetReady, format!("{} gateway pods ready, Redis serving", g.ready)),
    };
    let rolling = g.updated < g.desired || g.ready < serving || !redis_ok;
    let (progressing_reason, progressing_msg) = if rolling {
        (Reason::RollingOut, format!("gateway {}/{} updated and ready; {redis_msg}", g.ready.min(g.updated), g.desired))
    } else {
        (Reason::Stable, "nothing to roll out".to_string())
    };
    let lost_slots = matches!(redis_reason, Reason::RedisSlotsUncovered);
    let (degraded, degraded_reason, degraded_msg) = match &o.error {
        Some((reason, msg)) => (true, Reason::Error(reason), msg.clone()),
        None if lost_slots => (true, Reason::RedisSlotsUncovered, redis_msg.clone()),
        None => (false, Reason::NoErrors, "no errors".to_string()),
    };
    let generation = o.generation;
    let mut status = SocketFleetStatus {
        observed_generation: generation,
        conditions: vec![
            condition(prev, "Ready", ready, ready_reason, ready_msg, generation, now),
            condition(prev, "Progressing", rolling, progressing_reason, progressing_msg, generation, now),
            condition(prev, "Degraded", degraded, degraded_reason, degraded_msg, generation, now),
            condition(prev, "RedisReady", redis_ok, redis_reason, redis_msg, generation, now),
        ],
        gateway: GatewayStatus {
            replicas: g.desired,
            pods: format!("{}/{}", g.ready, g.existing),
            ready_replicas: g.ready,
            selector: g.selector.clone(),
            connections: g.connections,
        },
        redis,
        // The autoscaler's and the operations' steps (reconcile) replace these; an error
        // pass keeps them.
        autoscaler: prev.and_then(|p| p.autoscaler.clone()),
        operations: prev.map(|p| p.operations.clone()).unwrap_or_default(),
    };
    if let Some(d) = prev.and_then(|p| p.conditions.iter().find(|c| c.type_ == "Draining")) {
        status.conditions.push(d.clone());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond<'a>(s: &'a SocketFleetStatus, t: &str) -> (&'a str, &'a str) {
        let c = s.conditions.iter().find(|c| c.type_ == t).expect("condition");
        (c.status.as_str(), c.reason.as_str())
    }

    fn observed(ready: i32, redis: RedisObserved) -> Observed {
        Observed {
            generation: Some(3),
            gateway: GatewayObserved { desired: 2, existing: 2, ready, updated: 2, selector: "a=b".into(), connections: 7, draining: 0 },
            redis,
            error: None,
        }
    }

    fn healthy_report() -> Report {
        Report { primaries: 3, replicas: 3, slots_covered: 16384, cluster_state: "ok".into(), converged: true, ..Report::default() }
    }

    #[test]
    fn pending_pods_are_reported_as_pending_not_ready() {
        let s = derive(
            None,
            &observed(0, RedisObserved::Cluster { pods: 6, ready_pods: 0, report: None, kept: None, durable: false }),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(cond(&s, "Ready"), ("False", "RedisNotReady"));
        assert_eq!(cond(&s, "RedisReady"), ("False", "RedisPodsPending"));
        assert_eq!(cond(&s, "Progressing"), ("True", "RollingOut"));
        assert_eq!(cond(&s, "Degraded"), ("False", "NoErrors"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.redis.summary, "cluster pending 0/6");
    }

    #[test]
    fn a_healthy_fleet_is_ready_and_stable() {
        let s = derive(
            None,
            &observed(2, RedisObserved::Cluster { pods: 6, ready_pods: 6, report: Some(healthy_report()), kept: None, durable: true }),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(cond(&s, "Ready"), ("True", "FleetReady"));
        assert_eq!(cond(&s, "Progressing"), ("False", "Stable"));
        assert_eq!(cond(&s, "RedisReady"), ("True", "RedisClusterHealthy"));
        assert_eq!((s.redis.primaries, s.redis.slots_covered, s.gateway.connections), (3, 16384, 7));
    }

    #[test]
    fn durable_publishing_waits_for_a_replica_in_sync_on_every_primary() {
        let mut report = healthy_report();
        report.replicas = 2;
        report.primaries_without_replica = 1;
        report.converged = false;
        let cluster = |durable| RedisObserved::Cluster { pods: 6, ready_pods: 6, report: Some(report.clone()), kept: None, durable };
        let s = derive(None, &observed(2, cluster(true)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("False", "RedisReplicasSyncing"));
        assert_eq!(cond(&s, "Ready"), ("False", "RedisNotReady"));
        let s = derive(None, &observed(2, cluster(false)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("True", "RedisClusterHealthy"), "without durable publishes the slots are served");
    }

    #[test]
    fn lost_slots_degrade_and_errors_win() {
        let mut report = healthy_report();
        report.slots_covered = 10000;
        report.cluster_state = "fail".into();
        let s = derive(
            None,
            &observed(2, RedisObserved::Cluster { pods: 6, ready_pods: 5, report: Some(report), kept: None, durable: false }),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(cond(&s, "Degraded"), ("True", "RedisSlotsUncovered"));
        assert_eq!(cond(&s, "Ready"), ("False", "RedisNotReady"));
        let mut o = observed(2, RedisObserved::External);
        o.error = Some(("InvalidSpec", "replicas.min must not be greater than replicas.max".into()));
        let s = derive(None, &o, Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "Ready"), ("False", "InvalidSpec"));
        assert_eq!(cond(&s, "Degraded"), ("True", "InvalidSpec"));
    }

    #[test]
    fn transition_times_move_only_when_a_condition_flips() {
        let o = observed(1, RedisObserved::External);
        let first = derive(None, &o, Timestamp::UNIX_EPOCH);
        let later = Timestamp::from_second(1000).expect("time");
        let same = derive(Some(&first), &o, later);
        assert_eq!(same.conditions, first.conditions, "nothing changed: identical status, so no write");
        let flipped = derive(Some(&first), &observed(2, RedisObserved::External), later);
        let ready = flipped.conditions.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!((ready.status.as_str(), &ready.last_transition_time), ("True", &Time(later)));
    }
}
