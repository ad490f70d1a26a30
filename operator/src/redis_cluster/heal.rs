//! Bootstraps and heals a Redis Cluster by speaking the Redis admin protocol to each pod
//! (no `pods/exec`). One call is one idempotent pass; it returns what it did and whether
//! the cluster is whole, and the caller runs it again after a short wait until it is.
//!
//! A pass looks at every reachable pod (`CLUSTER MYID`, `CLUSTER NODES`), picks an anchor
//! (a pod that serves slots, else the lowest ordinal) and takes the first phase that has
//! work, because each phase needs the previous one to have spread by gossip:
//!
//! 1. **meet**: every pod the anchor does not know at its current address is introduced
//!    (`CLUSTER MEET`): new pods, and pods that came back with a new IP, which is also how
//!    a restart of every pod at once is healed;
//! 2. **forget**: node ids no pod answers to any more, that the cluster marked failed and
//!    that own no slots (a pod that came back empty gets a new id), are forgotten on every
//!    pod; a failed primary whose slots no replica took over is forgotten too, so its slots
//!    can be served again (that shard's data is lost: reported as a warning);
//! 3. **slots**: create-or-join is decided by coverage. With no slot assigned anywhere the
//!    designated primaries get the even split (a new cluster, or a scale from zero without
//!    persistence); otherwise only unassigned slots are given to their shard's primary.
//!    Slots that have an owner are never reassigned;
//! 4. **replicas**: every other pod of a shard that is an empty primary, or follows a pod
//!    outside its shard, replicates the shard's primary (`CLUSTER REPLICATE`);
//! 5. **open slots**: a migration left half done is finished when the target already holds
//!    keys of the slot (remaining keys are migrated, then `SETSLOT NODE`), else rolled back
//!    (`SETSLOT STABLE`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use redis::FromRedisValue;
use redis::aio::MultiplexedConnection;

use super::layout::{Layout, Member};
use super::nodes::{NodeLine, OpenSlot, SLOTS, parse_nodes, ranges};

/// What a pass changed; each becomes a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Meet { pod: String, addr: String },
    Forget { id: String, owned_slots: usize },
    AssignSlots { pod: String, slots: usize, fresh: bool },
    Replicate { pod: String, primary: String },
    FinishMigration { slot: u16, to: String, keys_moved: usize },
    RollBackMigration { slot: u16 },
}

impl Action {
    /// A short machine-readable reason (Event reason).
    pub fn reason(&self) -> &'static str {
        match self {
            Action::Meet { .. } => "RedisNodeMet",
            Action::Forget { owned_slots: 0, .. } => "RedisNodeForgotten",
            Action::Forget { .. } => "RedisSlotsLost",
            Action::AssignSlots { fresh: true, .. } => "RedisClusterCreated",
            Action::AssignSlots { .. } => "RedisSlotsAssigned",
            Action::Replicate { .. } => "RedisReplicaAttached",
            Action::FinishMigration { .. } => "RedisMigrationFinished",
            Action::RollBackMigration { .. } => "RedisMigrationRolledBack",
        }
    }

    /// Loses data or follows a loss: a Warning rather than a Normal event.
    pub fn is_warning(&self) -> bool {
        matches!(self, Action::Forget { owned_slots: 1.., .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Meet { pod, addr } => write!(f, "introduced {pod} at {addr} to the cluster"),
            Action::Forget { id, owned_slots: 0 } => write!(f, "forgot dead node {id}"),
            Action::Forget { id, owned_slots } => {
                write!(f, "forgot dead primary {id} whose {owned_slots} slots no replica took over; their data is lost")
            }
            Action::AssignSlots { pod, slots, fresh: true } => write!(f, "created the cluster: {slots} slots to {pod}"),
            Action::AssignSlots { pod, slots, fresh: false } => write!(f, "assigned {slots} unserved slots to {pod}"),
            Action::Replicate { pod, primary } => write!(f, "{pod} now replicates {primary}"),
            Action::FinishMigration { slot, to, keys_moved } => {
                write!(f, "finished the interrupted migration of slot {slot} to {to} ({keys_moved} keys moved)")
            }
            Action::RollBackMigration { slot } => write!(f, "rolled back the interrupted migration of slot {slot}"),
        }
    }
}

/// What a pass saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub actions: Vec<Action>,
    /// Pods that did not answer.
    pub unreachable: Vec<String>,
    /// Healthy primaries serving slots.
    pub primaries: usize,
    /// Replicas linked to a healthy primary.
    pub replicas: usize,
    pub slots_covered: usize,
    /// `cluster_state` of the anchor (`ok`, `fail`), `pending` without one.
    pub cluster_state: String,
    /// Everything is as the layout asks and nothing was changed.
    pub converged: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Nodes(#[from] super::nodes::ParseError),
    #[error("{0} pods were given for a layout of {1}")]
    Layout(usize, usize),
}

/// Connection settings for the pods.
#[derive(Debug, Clone)]
pub struct Access {
    pub password: Option<String>,
    pub timeout: Duration,
}

/// One reachable pod and its view.
struct Pod {
    member: Member,
    conn: MultiplexedConnection,
    id: String,
    view: Vec<NodeLine>,
}

impl Pod {
    fn me(&self) -> Option<&NodeLine> {
        self.view.iter().find(|n| n.myself)
    }

    fn line(&self, id: &str) -> Option<&NodeLine> {
        self.view.iter().find(|n| n.id == id)
    }

    async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, redis::RedisError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await
    }
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

async fn observe(member: &Member, access: &Access) -> Result<Pod, HealError> {
    // The sidecar's connection helper: the same password and timeout handling.
    let conn = socketfleet_plumbing::redis_conn::connect(&member.addr, access.password.as_deref(), access.timeout).await?;
    let mut pod = Pod { member: member.clone(), conn, id: String::new(), view: Vec::new() };
    pod.id = pod.run(&cmd(&["CLUSTER", "MYID"])).await?;
    let nodes: String = pod.run(&cmd(&["CLUSTER", "NODES"])).await?;
    pod.view = parse_nodes(&nodes)?;
    Ok(pod)
}

/// One pass over the cluster. `members` are the pods that exist now (any order).
pub async fn heal(layout: Layout, members: &[Member], access: &Access) -> Result<Report, HealError> {
    if members.len() > layout.pods() {
        return Err(HealError::Layout(members.len(), layout.pods()));
    }
    let mut report = Report { cluster_state: "pending".into(), ..Report::default() };
    let mut pods = Vec::new();
    for m in members {
        match observe(m, access).await {
            Ok(p) => pods.push(p),
            Err(e) => {
                tracing::debug!(pod = %m.name, error = %e, "Redis pod did not answer");
                report.unreachable.push(m.name.clone());
            }
        }
    }
    pods.sort_by_key(|p| p.member.ordinal);
    let Some(anchor) = pods.iter().find(|p| p.me().is_some_and(|me| !me.slots.is_empty())).or_else(|| pods.first()) else {
        return Ok(report);
    };
    let pass = Pass { layout, pods: &pods, anchor, access };
    for phase in [Phase::Meet, Phase::Forget, Phase::Slots, Phase::Replicas, Phase::OpenSlots] {
        report.actions = pass.run(phase).await?;
        if !report.actions.is_empty() {
            break;
        }
    }
    pass.describe(&mut report).await;
    report.converged = report.actions.is_empty()
        && report.unreachable.is_empty()
        && members.len() == layout.pods()
        && report.slots_covered == SLOTS as usize
        && report.primaries == layout.shards
        && report.replicas == layout.shards * layout.replicas_per_shard;
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Meet,
    Forget,
    Slots,
    Replicas,
    OpenSlots,
}

struct Pass<'a> {
    layout: Layout,
    pods: &'a [Pod],
    anchor: &'a Pod,
    access: &'a Access,
}

impl Pass<'_> {
    async fn run(&self, phase: Phase) -> Result<Vec<Action>, HealError> {
        match phase {
            Phase::Meet => self.meet().await,
            Phase::Forget => self.forget().await,
            Phase::Slots => self.slots().await,
            Phase::Replicas => self.replicas().await,
            Phase::OpenSlots => self.open_slots().await,
        }
    }

    fn pod_by_id(&self, id: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.id == id)
    }

    async fn meet(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        for pod in self.pods.iter().filter(|p| p.id != self.anchor.id) {
            let known = self.anchor.line(&pod.id).is_some_and(|n| n.addr == pod.member.addr && !n.handshake && !n.noaddr);
            if known {
                continue;
            }
            let (ip, port) = pod.member.addr.rsplit_once(':').unwrap_or((&pod.member.addr, "6379"));
            self.anchor.run::<()>(&cmd(&["CLUSTER", "MEET", ip, port])).await?;
            actions.push(Action::Meet { pod: pod.member.name.clone(), addr: pod.member.addr.clone() });
        }
        Ok(actions)
    }

    /// Whether a replica of `id` is alive to take its slots over.
    fn has_live_replica(&self, id: &str) -> bool {
        self.anchor.view.iter().any(|n| n.master_id.as_deref() == Some(id) && !n.failed && n.connected)
    }

    async fn forget(&self) -> Result<Vec<Action>, HealError> {
        let ours: BTreeSet<&str> = self.pods.iter().map(|p| p.id.as_str()).collect();
        let mut actions = Vec::new();
        for n in &self.anchor.view {
            if ours.contains(n.id.as_str()) || n.handshake || !(n.failed || n.noaddr) {
                continue;
            }
            if !n.slots.is_empty() && self.has_live_replica(&n.id) {
                continue; // the cluster fails over to that replica by itself
            }
            for pod in self.pods {
                // Errors: the pod never knew it, or it is that pod's master; both are fine.
                if let Err(e) = pod.run::<()>(&cmd(&["CLUSTER", "FORGET", &n.id])).await {
                    tracing::debug!(pod = %pod.member.name, id = %n.id, error = %e, "CLUSTER FORGET");
                }
            }
            actions.push(Action::Forget { id: n.id.clone(), owned_slots: n.slots.len() });
        }
        Ok(actions)
    }

    /// The pod serving a shard now: a healthy primary of the shard that owns slots, else
    /// an empty primary of the shard (the designated one first).
    fn shard_primary(&self, shard: usize) -> Option<&Pod> {
        let of_shard = || self.pods.iter().filter(move |p| self.layout.shard_of(p.member.ordinal) == shard);
        let serving = of_shard().find(|p| self.anchor.line(&p.id).is_some_and(|n| n.healthy_master() && !n.slots.is_empty()));
        serving.or_else(|| of_shard().find(|p| p.me().is_some_and(|me| me.master && me.slots.is_empty() && me.master_id.is_none())))
    }

    async fn slots(&self) -> Result<Vec<Action>, HealError> {
        // Every pod's view, not just the anchor's: a slot assigned in the last pass may not
        // have reached the anchor by gossip yet, and assigning it twice is refused.
        let assigned: BTreeSet<u16> = self.pods.iter().flat_map(|p| p.view.iter()).flat_map(|n| n.slots.iter().copied()).collect();
        let fresh = assigned.is_empty();
        if fresh && (0..self.layout.shards).any(|s| !self.pods.iter().any(|p| p.member.ordinal == s)) {
            return Ok(Vec::new()); // create only once every designated primary answers
        }
        let mut actions = Vec::new();
        for shard in 0..self.layout.shards {
            let missing: BTreeSet<u16> = self.layout.slots_of(shard).difference(&assigned).copied().collect();
            if missing.is_empty() {
                continue;
            }
            let target = if fresh { self.pods.iter().find(|p| p.member.ordinal == shard) } else { self.shard_primary(shard) };
            let Some(target) = target else { continue };
            for (a, b) in ranges(&missing) {
                target.run::<()>(&cmd(&["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()])).await?;
            }
            actions.push(Action::AssignSlots { pod: target.member.name.clone(), slots: missing.len(), fresh });
        }
        Ok(actions)
    }

    async fn replicas(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        for shard in 0..self.layout.shards {
            let Some(primary) = self.shard_primary(shard) else { continue };
            if self.anchor.line(&primary.id).is_none_or(|n| n.slots.is_empty()) {
                continue; // attach replicas once the primary serves slots
            }
            for pod in self.pods.iter().filter(|p| self.layout.shard_of(p.member.ordinal) == shard && p.id != primary.id) {
                let Some(me) = pod.me() else { continue };
                let follows_primary = me.master_id.as_deref() == Some(primary.id.as_str());
                // A primary that serves slots is never demoted here; failover decides that.
                let serving = me.master && !me.slots.is_empty();
                if follows_primary || serving {
                    continue;
                }
                if pod.line(&primary.id).is_none_or(|n| n.handshake) {
                    continue; // it does not know the primary yet: gossip first
                }
                pod.run::<()>(&cmd(&["CLUSTER", "REPLICATE", &primary.id])).await?;
                actions.push(Action::Replicate { pod: pod.member.name.clone(), primary: primary.member.name.clone() });
            }
        }
        Ok(actions)
    }

    async fn open_slots(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        let mut done = BTreeSet::new();
        for pod in self.pods {
            let Some(me) = pod.me() else { continue };
            for open in &me.open {
                let (slot, source, target) = match open {
                    OpenSlot::Migrating { slot, to } => (*slot, Some(pod), self.pod_by_id(to)),
                    OpenSlot::Importing { slot, from } => (*slot, self.pod_by_id(from), Some(pod)),
                };
                if !done.insert(slot) {
                    continue;
                }
                actions.push(self.close_slot(slot, source, target).await?);
            }
        }
        Ok(actions)
    }

    async fn keys_in(pod: &Pod, slot: u16) -> Result<usize, redis::RedisError> {
        pod.run(&cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])).await
    }

    /// Finishes a migration whose target already holds keys, else rolls it back.
    async fn close_slot(&self, slot: u16, source: Option<&Pod>, target: Option<&Pod>) -> Result<Action, HealError> {
        let s = slot.to_string();
        let target_has_keys = match target {
            Some(t) => Self::keys_in(t, slot).await? > 0,
            None => false,
        };
        let (Some(target), true) = (target, target_has_keys) else {
            for pod in [source, target].into_iter().flatten() {
                pod.run::<()>(&cmd(&["CLUSTER", "SETSLOT", &s, "STABLE"])).await?;
            }
            return Ok(Action::RollBackMigration { slot });
        };
        let mut moved = 0;
        if let Some(source) = source {
            let (host, port) = target.member.addr.rsplit_once(':').unwrap_or((&target.member.addr, "6379"));
            let timeout = self.access.timeout.as_millis().to_string();
            // Bounded: at most 16384 rounds of 100 keys; a slot rarely holds more.
            for _ in 0..16384 {
                let keys: Vec<String> = source.run(&cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "100"])).await?;
                if keys.is_empty() {
                    break;
                }
                let mut migrate = cmd(&["MIGRATE", host, port, "", "0", &timeout, "REPLACE"]);
                if let Some(p) = &self.access.password {
                    migrate.arg("AUTH").arg(p);
                }
                migrate.arg("KEYS").arg(&keys);
                source.run::<()>(&migrate).await?;
                moved += keys.len();
            }
        }
        // The target first, so that it owns the slot before the source lets go.
        target.run::<()>(&cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &target.id])).await?;
        for pod in self.pods.iter().filter(|p| p.id != target.id && p.me().is_some_and(|me| me.master)) {
            pod.run::<()>(&cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &target.id])).await?;
        }
        Ok(Action::FinishMigration { slot, to: target.member.name.clone(), keys_moved: moved })
    }

    /// Fills the topology figures of the report from the anchor's view.
    async fn describe(&self, report: &mut Report) {
        let view = &self.anchor.view;
        let healthy: BTreeMap<&str, &NodeLine> = view.iter().filter(|n| n.healthy_master()).map(|n| (n.id.as_str(), n)).collect();
        report.primaries = healthy.values().filter(|n| !n.slots.is_empty()).count();
        report.slots_covered = healthy.values().map(|n| n.slots.len()).sum();
        report.replicas =
            view.iter().filter(|n| !n.master && !n.failed && n.master_id.as_deref().is_some_and(|m| healthy.contains_key(m))).count();
        let info: Result<String, _> = self.anchor.run(&cmd(&["CLUSTER", "INFO"])).await;
        report.cluster_state = info
            .ok()
            .and_then(|i| i.lines().find_map(|l| l.strip_prefix("cluster_state:").map(|s| s.trim().to_string())))
            .unwrap_or_else(|| "unknown".into());
    }
}
