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
//!    can be served again (that shard's data is lost: reported as a warning), but only once
//!    no replica of it is left that could still be promoted (one the cluster has not marked
//!    failed, or one that answered the pass, whatever its bus link looks like);
//! 3. **slots**: create-or-join is decided by coverage. With no slot assigned anywhere the
//!    lowest `shards` ordinals get the even split (a new cluster, or a scale from zero
//!    without persistence); otherwise unassigned slots go to the chosen primary holding the
//!    fewest. Slots that have an owner are never reassigned here;
//! 4. **open slots**: a migration left half done (an interrupted pass, an operator that
//!    restarted mid-reshard) is finished when the target already holds keys of the slot
//!    (remaining keys are migrated, then `SETSLOT NODE`), else rolled back (`SETSLOT STABLE`);
//! 5. **handover**: a primary on a pod the layout removes gives its role to a replica that
//!    stays (`CLUSTER FAILOVER`, no data moves);
//! 6. **replicas**: pods the plan ([`super::plan`]) makes replicas follow their primary
//!    (`CLUSTER REPLICATE`);
//! 7. **reshard**: slots move from pods holding more than their share to those holding
//!    less ([`super::migrate`]), for at most [`super::migrate::PASS_BUDGET`] per pass; never
//!    into a primary whose replica is still loading its first copy (durable publishes to
//!    those slots would wait for a replica that cannot answer yet).
//!
//! Handover and resharding wait until every pod of the layout answers, so a pod that is
//! still starting is not mistaken for a missing one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::layout::{Layout, Member};
use super::migrate;
use super::nodes::{NodeLine, OpenSlot, SLOTS, has_unfailed_replica, ranges};
use super::plan::{self, Plan};
use super::pod::{Access, HealError, Pod, cmd};

/// What a pass changed; each becomes a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Meet {
        pod: String,
        addr: String,
    },
    Forget {
        id: String,
        owned_slots: usize,
    },
    AssignSlots {
        pod: String,
        slots: usize,
        fresh: bool,
    },
    Replicate {
        pod: String,
        primary: String,
    },
    FinishMigration {
        slot: u16,
        to: String,
        keys_moved: usize,
    },
    RollBackMigration {
        slot: u16,
    },
    /// A primary on a pod the layout removes gave its role to a replica that stays.
    HandOver {
        from: String,
        to: String,
    },
    /// Resharding: slots (and their keys) moved between primaries.
    MoveSlots {
        from: String,
        to: String,
        slots: usize,
        keys: usize,
    },
    /// Resharding waits: the receiving primary lacks memory for what would move.
    MoveBlocked {
        to: String,
        reason: String,
    },
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
            Action::HandOver { .. } => "RedisPrimaryHandedOver",
            Action::MoveSlots { .. } => "RedisSlotsMoved",
            Action::MoveBlocked { .. } => "RedisReshardBlocked",
        }
    }

    /// Loses data or follows a loss: a Warning rather than a Normal event.
    pub fn is_warning(&self) -> bool {
        matches!(self, Action::Forget { owned_slots: 1.., .. } | Action::MoveBlocked { .. })
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
            Action::HandOver { from, to } => write!(f, "{from} is leaving: its replica {to} took over its slots"),
            Action::MoveSlots { from, to, slots, keys } => write!(f, "moved {slots} slots ({keys} keys) from {from} to {to}"),
            Action::MoveBlocked { to, reason } => write!(f, "resharding waits: {to} {reason}"),
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
    /// Their pods' names (sorted; a primary on an address no pod has is left out).
    pub primary_pods: Vec<String>,
    /// Replicas linked to a healthy primary.
    pub replicas: usize,
    pub slots_covered: usize,
    /// `cluster_state` of the anchor (`ok`, `fail`), `pending` without one.
    pub cluster_state: String,
    /// Slots the layout still asks to move after this pass (resharding).
    pub slots_to_move: usize,
    /// Pods beyond the layout (a scale-in) that still own slots or did not answer: the
    /// StatefulSet must keep them.
    pub leaving_busy: usize,
    /// Healthy primaries serving slots without a replica in sync: a durable publish to
    /// them is refused until one is.
    pub primaries_without_replica: usize,
    /// Nodes the cluster still knows that no pod is: a removed pod not yet forgotten (it
    /// is, once the cluster marks it failed), or a handshake under way.
    pub departed: usize,
    /// Everything is as the layout asks and nothing was changed.
    pub converged: bool,
}

/// One pass over the cluster. `members` are the pods that exist now (any order); those
/// beyond the layout's pod count are leaving (a scale-in): their slots move away first.
pub async fn heal(layout: Layout, members: &[Member], access: &Access) -> Result<Report, HealError> {
    let mut report = Report { cluster_state: "pending".into(), ..Report::default() };
    let mut pods = Vec::new();
    for m in members {
        match Pod::observe(m, access).await {
            Ok(p) => pods.push(p),
            Err(e) => {
                tracing::debug!(pod = %m.name, error = %e, "Redis pod did not answer");
                report.unreachable.push(m.name.clone());
            }
        }
    }
    pods.sort_by_key(|p| p.member.ordinal);
    let leaving = |ordinal: usize| !plan::stays(layout, ordinal);
    let Some(anchor) = pods.iter().find(|p| p.me().is_some_and(|me| !me.slots.is_empty())).or_else(|| pods.first()) else {
        report.leaving_busy = members.iter().filter(|m| leaving(m.ordinal)).count();
        return Ok(report);
    };
    let nodes: Vec<plan::Node> = pods
        .iter()
        .map(|p| {
            let line = anchor.line(&p.id).or(p.me());
            plan::Node {
                ordinal: p.member.ordinal,
                id: p.id.clone(),
                master: p.me().is_some_and(|me| me.master),
                slots: line.map_or(0, |n| n.slots.len()),
                master_id: p.me().and_then(|me| me.master_id.clone()),
                healthy: line.is_some_and(|n| !n.failed && !n.handshake && !n.noaddr),
            }
        })
        .collect();
    let plan = plan::plan(layout, &nodes);
    // Every pod of the layout answers, knows every other and sees the cluster ok: the
    // plan's choice of new primaries is stable, a new owner can be announced to all, and
    // a receiver accepts keys (a node that is not ok answers MIGRATE with CLUSTERDOWN).
    let whole = (0..layout.pods()).all(|o| pods.iter().any(|p| p.member.ordinal == o))
        && pods.iter().all(|p| p.state_ok() && pods.iter().all(|q| p.line(&q.id).is_some_and(|n| !n.handshake && !n.noaddr)));
    let created = pods.iter().flat_map(|p| p.view.iter()).any(|n| !n.slots.is_empty());
    let pass = Pass { layout, pods: &pods, anchor, access, plan: &plan, whole, created };
    for phase in [Phase::Meet, Phase::Forget, Phase::Slots, Phase::OpenSlots, Phase::HandOver, Phase::Replicas, Phase::Reshard] {
        report.actions = pass.run(phase).await?;
        if !report.actions.is_empty() {
            break;
        }
    }
    let moved: usize = report.actions.iter().map(|a| if let Action::MoveSlots { slots, .. } = a { *slots } else { 0 }).sum();
    report.slots_to_move = plan.slots_to_move().saturating_sub(moved);
    report.leaving_busy = members
        .iter()
        .filter(|m| leaving(m.ordinal))
        .filter(|m| !pods.iter().any(|p| p.member.name == m.name && anchor.line(&p.id).is_some_and(|n| n.slots.is_empty())))
        .count();
    pass.describe(&mut report);
    report.converged = report.actions.is_empty()
        && report.unreachable.is_empty()
        && members.len() == layout.pods()
        && report.slots_to_move == 0
        && plan.handovers.is_empty()
        && report.slots_covered == SLOTS as usize
        && report.primaries == layout.shards
        && report.replicas == layout.shards * layout.replicas_per_shard
        && report.departed == 0;
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Meet,
    Forget,
    Slots,
    OpenSlots,
    HandOver,
    Replicas,
    Reshard,
}

struct Pass<'a> {
    layout: Layout,
    pods: &'a [Pod],
    anchor: &'a Pod,
    access: &'a Access,
    plan: &'a Plan,
    /// Every pod of the layout answered.
    whole: bool,
    /// Some slot is assigned somewhere: roles and slots move only in a cluster that exists.
    created: bool,
}

impl Pass<'_> {
    async fn run(&self, phase: Phase) -> Result<Vec<Action>, HealError> {
        match phase {
            Phase::Meet => self.meet().await,
            Phase::Forget => self.forget().await,
            Phase::Slots => self.slots().await,
            Phase::OpenSlots => self.open_slots().await,
            Phase::HandOver if self.created && self.whole => self.hand_over().await,
            Phase::Replicas if self.created => self.replicas().await,
            Phase::Reshard if self.created && self.whole => self.reshard().await,
            _ => Ok(Vec::new()),
        }
    }

    fn pod_by_id(&self, id: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.id == id)
    }

    /// The healthy primary other than `except` that owns `slot`, as the anchor sees it.
    fn owner_of(&self, slot: u16, except: &str) -> Option<&Pod> {
        let line = self.anchor.view.iter().find(|n| n.healthy_master() && n.id != except && n.slots.contains(&slot))?;
        self.pod_by_id(&line.id)
    }

    fn name_of(&self, id: &str) -> String {
        self.pod_by_id(id).map_or_else(|| id.to_string(), |p| p.member.name.clone())
    }

    /// The primaries every new owner of a slot is announced to.
    fn primaries(&self) -> Vec<&Pod> {
        self.pods.iter().filter(|p| p.me().is_some_and(|me| me.master)).collect()
    }

    async fn meet(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        for pod in self.pods.iter().filter(|p| p.id != self.anchor.id) {
            let known = self.anchor.line(&pod.id).is_some_and(|n| n.addr == pod.member.addr && !n.handshake && !n.noaddr);
            if known {
                continue;
            }
            let (ip, port) = pod.host_port();
            self.anchor.run::<()>(&cmd(&["CLUSTER", "MEET", ip, port])).await?;
            actions.push(Action::Meet { pod: pod.member.name.clone(), addr: pod.member.addr.clone() });
        }
        Ok(actions)
    }

    /// Whether a replica of `id` may still take its slots over: one the cluster has not
    /// marked failed, or one that answered this pass. The anchor's bus link to it is not
    /// asked: under load a link is dropped and made again (after half the node timeout
    /// without a pong), and forgetting the primary then would hand its slots, and the data
    /// only its replica holds, to an empty pod.
    fn may_fail_over(&self, id: &str) -> bool {
        has_unfailed_replica(&self.anchor.view, id)
            || self.pods.iter().any(|p| p.me().is_some_and(|me| me.master_id.as_deref() == Some(id)))
    }

    async fn forget(&self) -> Result<Vec<Action>, HealError> {
        let ours: BTreeSet<&str> = self.pods.iter().map(|p| p.id.as_str()).collect();
        let mut actions = Vec::new();
        for n in &self.anchor.view {
            if ours.contains(n.id.as_str()) || n.handshake || !(n.failed || n.noaddr) {
                continue;
            }
            if !n.slots.is_empty() && self.may_fail_over(&n.id) {
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

    async fn slots(&self) -> Result<Vec<Action>, HealError> {
        // Every pod's view, not just the anchor's: a slot assigned in the last pass may not
        // have reached the anchor by gossip yet, and assigning it twice is refused.
        if !self.created {
            return self.create().await;
        }
        let assigned: BTreeSet<u16> = self.pods.iter().flat_map(|p| p.view.iter()).flat_map(|n| n.slots.iter().copied()).collect();
        let missing: BTreeSet<u16> = (0..SLOTS).filter(|s| !assigned.contains(s)).collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        // Unserved slots go to a chosen primary that holds none (a pod that came back
        // empty), never to one serving others: a primary that was only away may return
        // with its data (persistence) and nodes.conf, and must find its slots unclaimed.
        // Resharding evens out the shares later.
        let holding = |p: &Pod| self.anchor.line(&p.id).map_or(0, |n| n.slots.len());
        let Some(target) = self.plan.primaries.iter().filter_map(|id| self.pod_by_id(id)).find(|p| holding(p) == 0) else {
            return Ok(Vec::new());
        };
        add_slots(target, &missing).await?;
        Ok(vec![Action::AssignSlots { pod: target.member.name.clone(), slots: missing.len(), fresh: false }])
    }

    /// A new cluster: the even split over the pods with the lowest ordinals, once every one
    /// of them answers.
    async fn create(&self) -> Result<Vec<Action>, HealError> {
        let designated: Vec<&Pod> = (0..self.layout.shards).filter_map(|o| self.pods.iter().find(|p| p.member.ordinal == o)).collect();
        if designated.len() < self.layout.shards {
            return Ok(Vec::new());
        }
        let mut actions = Vec::new();
        for (shard, target) in designated.into_iter().enumerate() {
            let slots = self.layout.slots_of(shard);
            add_slots(target, &slots).await?;
            actions.push(Action::AssignSlots { pod: target.member.name.clone(), slots: slots.len(), fresh: true });
        }
        Ok(actions)
    }

    async fn hand_over(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        for heir in self.plan.handovers.iter().filter_map(|id| self.pod_by_id(id)) {
            let from = heir.me().and_then(|me| me.master_id.clone()).map(|id| self.name_of(&id)).unwrap_or_default();
            heir.run::<()>(&cmd(&["CLUSTER", "FAILOVER"])).await?;
            actions.push(Action::HandOver { from, to: heir.member.name.clone() });
        }
        Ok(actions)
    }

    async fn replicas(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        // A replica whose replication still connects to its primary's old address (the
        // primary came back with a new IP) never catches up by itself: point it again.
        for pod in self.pods.iter().filter(|p| !p.in_sync) {
            let Some(master) = pod.me().and_then(|me| me.master_id.as_deref()) else { continue };
            let Some(line) = self.anchor.line(master).filter(|n| n.healthy_master() && !n.addr.is_empty()) else { continue };
            if pod.master_addr.as_deref().is_some_and(|a| a != line.addr) {
                pod.run::<()>(&cmd(&["CLUSTER", "REPLICATE", master])).await?;
                actions.push(Action::Replicate { pod: pod.member.name.clone(), primary: self.name_of(master) });
            }
        }
        if !actions.is_empty() {
            return Ok(actions);
        }
        for (replica, primary) in &self.plan.attach {
            let (Some(pod), Some(target)) = (self.pod_by_id(replica), self.pod_by_id(primary)) else { continue };
            let serving = self.anchor.line(&target.id).is_some_and(|n| !n.slots.is_empty());
            if !serving && !self.whole {
                continue; // a new primary gets replicas once the layout's pods all answer
            }
            if pod.line(&target.id).is_none_or(|n| n.handshake) {
                continue; // it does not know the primary yet: gossip first
            }
            if pod.me().is_some_and(|me| !me.slots.is_empty()) {
                continue; // slots it was given have not reached the anchor yet: Redis would refuse
            }
            pod.run::<()>(&cmd(&["CLUSTER", "REPLICATE", &target.id])).await?;
            actions.push(Action::Replicate { pod: pod.member.name.clone(), primary: target.member.name.clone() });
        }
        Ok(actions)
    }

    /// Moves slots as the plan says, up to [`migrate::PARALLEL_MOVES`] pairs of primaries at
    /// once, until the pass's time budget is spent.
    async fn reshard(&self) -> Result<Vec<Action>, HealError> {
        let deadline = std::time::Instant::now() + migrate::PASS_BUDGET;
        let primaries = self.primaries();
        // Each move gets its own slots: a source giving to two receivers splits its list.
        let mut lists: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        let mut work = Vec::new();
        for (from, to, count) in &self.plan.moves {
            let (Some(source), Some(target)) = (self.pod_by_id(from), self.pod_by_id(to)) else { continue };
            if let Some(copying) = self.replica_still_copying(target) {
                // Slots moved in now would be served without a replica: every durable
                // publish to them waits out its WAIT and is refused until the copy ends.
                tracing::info!(target = %target.member.name, replica = %copying, "a slot move waits for the receiver's replica to finish its first copy");
                continue;
            }
            let list =
                lists.entry(from).or_insert_with(|| self.anchor.line(from).map(|n| n.slots.iter().copied().collect()).unwrap_or_default());
            let take = (*count).min(list.len());
            let slots = list.split_off(list.len() - take);
            work.push((source, target, slots));
        }
        let mut actions = Vec::new();
        let mut first_error = None;
        for batch in work.chunks(migrate::PARALLEL_MOVES) {
            let done = futures_util::future::join_all(batch.iter().map(|(source, target, slots)| async {
                let (from, to) = (source.member.name.clone(), target.member.name.clone());
                match migrate::memory_check(source, target, slots.len()).await {
                    Ok(Some(reason)) => (Some(Action::MoveBlocked { to, reason }), None),
                    Err(e) => (None, Some(e)),
                    Ok(None) => {
                        let (slots, keys, error) = migrate::move_slots(source, target, &primaries, slots, self.access, deadline).await;
                        ((slots > 0).then_some(Action::MoveSlots { from, to, slots, keys }), error)
                    }
                }
            }))
            .await;
            for (action, error) in done {
                actions.extend(action);
                first_error = first_error.or(error);
            }
        }
        // A move that failed half way leaves its slot open for the next pass to close; what
        // moved before it is reported, not lost in an error.
        match first_error {
            Some(e) if actions.is_empty() => Err(e.into()),
            Some(e) => {
                tracing::warn!(error = %e, "a slot move was interrupted; the next pass closes it");
                Ok(actions)
            }
            None => Ok(actions),
        }
    }

    /// A replica of `primary` that is still loading its copy (its link is not up yet), by
    /// pod name.
    fn replica_still_copying(&self, primary: &Pod) -> Option<String> {
        self.pods
            .iter()
            .find(|p| !p.in_sync && p.me().is_some_and(|me| !me.master && me.master_id.as_deref() == Some(primary.id.as_str())))
            .map(|p| p.member.name.clone())
    }

    async fn open_slots(&self) -> Result<Vec<Action>, HealError> {
        let mut actions = Vec::new();
        let mut done = BTreeSet::new();
        for pod in self.pods {
            let Some(me) = pod.me() else { continue };
            for open in &me.open {
                let (slot, source, target) = match open {
                    OpenSlot::Migrating { slot, to } => (*slot, Some(pod), self.pod_by_id(to)),
                    // A source that is gone (killed mid-migration) was replaced by its
                    // promoted replica: that is where the slot's other keys are now.
                    OpenSlot::Importing { slot, from } => {
                        (*slot, self.pod_by_id(from).or_else(|| self.owner_of(*slot, &pod.id)), Some(pod))
                    }
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
        let moved = match source {
            Some(source) => migrate::move_keys(source, target, slot, self.access).await?,
            None => 0,
        };
        // The target first, so that it owns the slot before the source lets go.
        migrate::assign(slot, target, &self.primaries()).await?;
        Ok(Action::FinishMigration { slot, to: target.member.name.clone(), keys_moved: moved })
    }

    /// Fills the topology figures of the report from the anchor's view.
    fn describe(&self, report: &mut Report) {
        let view = &self.anchor.view;
        let healthy: BTreeMap<&str, &NodeLine> = view.iter().filter(|n| n.healthy_master()).map(|n| (n.id.as_str(), n)).collect();
        report.primaries = healthy.values().filter(|n| !n.slots.is_empty()).count();
        report.primary_pods =
            healthy.values().filter(|n| !n.slots.is_empty()).filter_map(|n| self.pod_by_id(&n.id).map(|p| p.member.name.clone())).collect();
        report.primary_pods.sort();
        report.slots_covered = healthy.values().map(|n| n.slots.len()).sum();
        // A replica counts once its copy is complete (a replica still loading cannot keep a
        // durable publish); a pod that did not answer is judged by the anchor alone.
        let synced = |id: &str| self.pod_by_id(id).is_none_or(|p| p.in_sync);
        let followers: Vec<&str> = view
            .iter()
            .filter(|n| !n.master && !n.failed && n.master_id.as_deref().is_some_and(|m| healthy.contains_key(m)) && synced(&n.id))
            .filter_map(|n| n.master_id.as_deref())
            .collect();
        report.replicas = followers.len();
        report.primaries_without_replica = healthy.values().filter(|n| !n.slots.is_empty() && !followers.contains(&n.id.as_str())).count();
        report.cluster_state = self.anchor.cluster_state.clone();
        report.departed = view.iter().filter(|n| self.pod_by_id(&n.id).is_none()).count();
    }
}

/// Assigns `slots` to `pod`, a range at a time.
async fn add_slots(pod: &Pod, slots: &BTreeSet<u16>) -> Result<(), redis::RedisError> {
    for (a, b) in ranges(slots) {
        pod.run::<()>(&cmd(&["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()])).await?;
    }
    Ok(())
}
