//! The status step: a fleet's status derived only from what the operator applied and read
//! back. Pure, so every condition and reason is unit-tested.
//!
//! Conditions (reasons are a fixed set, see [`Reason`]):
//! - `RedisReady`: Redis serves every slot (cluster; with durable publishes every primary
//!   has a replica in sync), a quorum of Sentinels names a primary and every pod is ready
//!   (sentinel; with durable publishes the primary has a replica in sync), or it is external
//!   (not checked from here);
//! - `Ready`: RedisReady and every desired gateway pod is ready;
//! - `Progressing`: something is still being created or rolled out;
//! - `Degraded`: an error, an invalid spec, or Redis lost coverage after having had it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::children::redis::SENTINEL_QUORUM;
use crate::redis_cluster::Report;
use crate::redis_cluster::nodes::SLOTS;
use crate::redis_sentinel::Report as SentinelReport;
use socketfleet_api::crd::{AutoscalerStatus, Failover, GatewayStatus, RedisStatus, SocketFleetStatus};

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
    SentinelsDisagree,
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
            Reason::SentinelsDisagree => "SentinelsDisagree",
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
    /// Sentinel mode: pods asked for and ready, and the supervision pass (None when no
    /// Sentinel pod has an address yet).
    Sentinel {
        pods: i32,
        ready_pods: i32,
        report: Option<SentinelReport>,
        /// Pods kept beyond the spec's while the primary is on one of them (a scale-in).
        kept: Option<i32>,
        durable: bool,
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
        RedisObserved::Sentinel { pods, ready_pods, report, kept, durable } => {
            let mut s = RedisStatus {
                ready_pods: *ready_pods,
                pods: *pods,
                kept_pods: *kept,
                cluster_state: "pending".into(),
                ..RedisStatus::default()
            };
            let pods_ready = ready_pods >= pods && *pods > 0;
            let Some(r) = report.as_ref().filter(|r| r.sentinels > 0) else {
                s.summary = format!("sentinel pending {ready_pods}/{pods}");
                let msg =
                    if pods_ready { "no Sentinel answers".to_string() } else { format!("{ready_pods} of {pods} Redis pods are ready") };
                return (s, false, Reason::RedisPodsPending, msg);
            };
            s.primaries = i32::from(r.primary.is_some());
            s.replicas = r.replicas_in_sync as i32;
            s.primary_pods = r.primary.iter().cloned().collect();
            let agreed = r.primary.is_some() && r.agreeing >= SENTINEL_QUORUM;
            let guarded = !*durable || r.replicas_in_sync > 0;
            let ok = pods_ready && agreed && guarded;
            s.cluster_state = if ok { "ok" } else { "pending" }.into();
            let primary = r.primary.as_deref().unwrap_or("none");
            s.summary =
                format!("sentinel primary {primary}, {} in sync, {}/{} Sentinels agree", r.replicas_in_sync, r.agreeing, r.sentinels);
            let (reason, msg) = if !agreed {
                (
                    Reason::SentinelsDisagree,
                    format!("{} of {} Sentinels name the primary {primary}; {SENTINEL_QUORUM} must", r.agreeing, r.sentinels),
                )
            } else if !pods_ready {
                (Reason::RedisPodsPending, format!("{ready_pods} of {pods} Redis pods are ready"))
            } else if !guarded {
                (
                    Reason::RedisReplicasSyncing,
                    format!("the primary {primary} has no replica in sync yet; durable publishes would be refused"),
                )
            } else {
                (
                    Reason::RedisPodsReady,
                    format!("primary {primary} with {} replicas in sync; {} Sentinels agree", r.replicas_in_sync, r.agreeing),
                )
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
            // Only a whole picture: while a primary is away the list keeps its last value.
            if r.primary_pods.len() == r.primaries && r.slots_covered == SLOTS as usize {
                s.primary_pods = r.primary_pods.clone();
            }
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
            } else if ok && r.departed > 0 {
                (Reason::RedisClusterHealthy, format!("all {SLOTS} slots are served; {} removed nodes not forgotten yet", r.departed))
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

/// Keeps the primaries' list across passes that did not see it whole, and records a
/// failover when a pod that was a primary is not one any more and another took its place
/// (a scale-out only adds primaries, a scale-in's slot moves only remove them).
fn follow_primaries(prev: Option<&RedisStatus>, now_status: &mut RedisStatus, now: Timestamp) {
    let Some(prev) = prev else { return };
    now_status.last_failover = prev.last_failover.clone();
    if now_status.primary_pods.is_empty() {
        now_status.primary_pods = prev.primary_pods.clone();
        return;
    }
    let from: Vec<String> = prev.primary_pods.iter().filter(|p| !now_status.primary_pods.contains(p)).cloned().collect();
    let to: Vec<String> = now_status.primary_pods.iter().filter(|p| !prev.primary_pods.contains(p)).cloned().collect();
    if !from.is_empty() && !to.is_empty() {
        now_status.last_failover = Some(Failover { time: now.to_string(), from, to });
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
    let (mut redis, redis_ok, redis_reason, redis_msg) = redis_status(&o.redis);
    follow_primaries(prev.map(|p| &p.redis), &mut redis, now);
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

    fn sentinel(report: Option<SentinelReport>, durable: bool) -> RedisObserved {
        RedisObserved::Sentinel { pods: 3, ready_pods: 3, report, kept: None, durable }
    }

    fn sentinel_report(primary: &str, agreeing: usize, in_sync: usize) -> SentinelReport {
        SentinelReport { primary: Some(primary.into()), agreeing, sentinels: 3, replicas_in_sync: in_sync, ..SentinelReport::default() }
    }

    #[test]
    fn sentinel_mode_is_ready_once_a_quorum_names_a_primary_guarded_as_asked() {
        let s = derive(None, &observed(2, sentinel(None, false)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("False", "RedisPodsPending"));
        let s = derive(None, &observed(2, sentinel(Some(sentinel_report("chat-redis-1", 1, 2)), false)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("False", "SentinelsDisagree"));
        let s = derive(None, &observed(2, sentinel(Some(sentinel_report("chat-redis-1", 3, 0)), true)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("False", "RedisReplicasSyncing"), "durable: a replica in sync first");
        let s = derive(None, &observed(2, sentinel(Some(sentinel_report("chat-redis-1", 2, 2)), true)), Timestamp::UNIX_EPOCH);
        assert_eq!(cond(&s, "RedisReady"), ("True", "RedisPodsReady"));
        assert_eq!(s.redis.primary_pods, ["chat-redis-1"]);
        assert_eq!(s.redis.summary, "sentinel primary chat-redis-1, 2 in sync, 2/3 Sentinels agree");
    }

    #[test]
    fn a_primary_replaced_by_another_pod_is_a_failover_but_growing_or_shrinking_is_not() {
        let at = |s| Timestamp::from_second(s).expect("time");
        let cluster = |pods: &[&str], covered: usize| {
            let mut r = healthy_report();
            r.primary_pods = pods.iter().map(|p| p.to_string()).collect();
            r.primaries = pods.len();
            r.slots_covered = covered;
            RedisObserved::Cluster { pods: 10, ready_pods: 10, report: Some(r), kept: None, durable: false }
        };
        let first = derive(None, &observed(2, cluster(&["r-0", "r-1", "r-2"], 16384)), at(1));
        assert_eq!(first.redis.last_failover, None);
        // r-0 is away: the list is not whole, so it keeps its last value.
        let away = derive(Some(&first), &observed(2, cluster(&["r-1", "r-2"], 10923)), at(2));
        assert_eq!((away.redis.primary_pods.len(), &away.redis.last_failover), (3, &None));
        let failed_over = derive(Some(&away), &observed(2, cluster(&["r-1", "r-2", "r-3"], 16384)), at(3));
        let f = failed_over.redis.last_failover.clone().expect("a failover");
        assert_eq!((f.from, f.to, f.time.as_str()), (vec!["r-0".to_string()], vec!["r-3".to_string()], "1970-01-01T00:00:03Z"));
        let grown = derive(Some(&failed_over), &observed(2, cluster(&["r-1", "r-2", "r-3", "r-6"], 16384)), at(4));
        assert_eq!(grown.redis.last_failover.as_ref().map(|f| f.time.as_str()), Some("1970-01-01T00:00:03Z"), "kept, not new");
        let shrunk = derive(Some(&grown), &observed(2, cluster(&["r-1", "r-2", "r-3"], 16384)), at(5));
        assert_eq!(shrunk.redis.last_failover, grown.redis.last_failover);
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
