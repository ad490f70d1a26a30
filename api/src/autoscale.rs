//! The connection autoscaler's decision, pure: live connections per pod and what the
//! autoscaler remembers in, the next replica count and one action out. The operator (builtin
//! mode) and `socketfleet local` both call [`decide`]; neither has a rule of its own.
//!
//! The rule:
//! - wanted pods = ceil((connections + buffer) / target), within `min..=max`;
//! - **up at once**, bounded: at most max(4 pods, 100% of the serving pods) per
//!   [`SCALE_UP_PERIOD`] (HPA's default policy);
//! - **down one pod at a time**, only after load stayed low for the stabilization window,
//!   and only when the pods left would be at most [`DOWN_TOLERANCE`] of the target (so load
//!   hovering at a threshold does not flap). A scale-down is a drain: the victim (not-ready
//!   pods first, then fewest connections) is drained, and only when its drain finished (or
//!   the drain timeout passed) is it removed and the count lowered;
//! - **unknown is not zero**: a pod whose sidecar did not answer blocks every scale-down, so
//!   a pod that is starting, restarting or cut off is never counted as lost load. A pod that
//!   answers but is not ready (Redis failover) keeps the connections it reports.
//!
//! Rebalancing ([`rebalance`]): new pods start empty, and a Service never moves a connection
//! that is open. When every pod is ready and readable and none drains, a pod above the mean
//! by more than [`REBALANCE_TOLERANCE`] (and [`REBALANCE_SLACK`] connections) is asked to
//! shed its excess, at most [`SHED_PER_SECOND`] of its connections per second, through the
//! drain's lossless handoff; the clients reconnect through the Service.

use serde::{Deserialize, Serialize};

/// At most one scale-up per this period (connections do not rise because pods were added,
/// so this is about pacing, not feedback).
pub const SCALE_UP_PERIOD_MS: u64 = 15_000;
/// Fewest pods a scale-up may add.
pub const SCALE_UP_MIN_STEP: u32 = 4;
/// A scale-down needs the remaining pods at or below this share of the target.
pub const DOWN_TOLERANCE: f64 = 0.9;
/// A drain that has not finished by the drain timeout plus this is ended by removing the
/// pod (the sidecar itself gives up at the drain timeout).
pub const DRAIN_MARGIN_MS: u64 = 10_000;

/// What the fleet's spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub target_per_pod: u64,
    pub buffer: u64,
    pub min: u32,
    pub max: u32,
    pub stabilization_ms: u64,
    pub drain_timeout_ms: u64,
}

/// A pod's drain, as its sidecar reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodDrain {
    #[default]
    None,
    /// Draining: `remaining` connections still open.
    Draining { remaining: u64 },
    /// The drain ran to its end.
    Finished,
}

/// One gateway pod, as observed (terminating pods are left out by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLoad {
    pub name: String,
    pub ready: bool,
    /// None: the sidecar did not answer.
    pub connections: Option<u64>,
    pub drain: PodDrain,
}

/// A drain the autoscaler started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draining {
    pub pod: String,
    pub since_ms: u64,
}

/// What the autoscaler carries from one decision to the next.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memory {
    /// The replica count it set (the draining pod included while it drains).
    pub replicas: u32,
    /// Since when load has been low enough for one pod fewer.
    pub low_since_ms: Option<u64>,
    pub last_scale_up_ms: Option<u64>,
    pub draining: Option<Draining>,
}

/// A spread within this share of the mean is balanced.
pub const REBALANCE_TOLERANCE: f64 = 0.2;
/// ... or within this many connections of it (small fleets are never balanced exactly).
pub const REBALANCE_SLACK: u64 = 2;
/// A pod sheds at most this share of its connections per second.
pub const SHED_PER_SECOND: f64 = 0.05;

/// A pod asked to hand `count` connections off to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shed {
    pub pod: String,
    pub count: u64,
}

/// What to shed over the next `period_ms` so the spread moves toward the mean; nothing
/// unless every pod is ready, readable and not draining (a drain or a pod coming up is its
/// own move of connections; shedding then would count against a moving target).
pub fn rebalance(pods: &[PodLoad], period_ms: u64) -> Vec<Shed> {
    if pods.len() < 2 || pods.iter().any(|p| !p.ready || p.connections.is_none() || p.drain != PodDrain::None) {
        return Vec::new();
    }
    let total: u64 = pods.iter().filter_map(|p| p.connections).sum();
    let mean = total as f64 / pods.len() as f64;
    let bound = (mean * (1.0 + REBALANCE_TOLERANCE)).max(mean + REBALANCE_SLACK as f64);
    let per_period = SHED_PER_SECOND * period_ms as f64 / 1000.0;
    pods.iter()
        .filter_map(|p| {
            let c = p.connections.unwrap_or(0);
            if (c as f64) <= bound {
                return None;
            }
            let excess = c - mean.ceil() as u64;
            let count = excess.min(((c as f64 * per_period).floor() as u64).max(1));
            Some(Shed { pod: p.name.clone(), count })
        })
        .collect()
}

/// Whether the spread is within the rebalancing tolerance (no connections: balanced).
pub fn balanced(pods: &[PodLoad]) -> bool {
    spread(pods).is_none_or(|s| s <= 1.0 + REBALANCE_TOLERANCE)
}

/// The spread as people read it: the fullest pod over the mean (1.0 is even).
pub fn spread(pods: &[PodLoad]) -> Option<f64> {
    let counts: Vec<u64> = pods.iter().filter_map(|p| p.connections).collect();
    let total: u64 = counts.iter().sum();
    if counts.is_empty() || total == 0 {
        return None;
    }
    Some(*counts.iter().max()? as f64 * counts.len() as f64 / total as f64)
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Hold,
    ScaleUp {
        from: u32,
        to: u32,
    },
    /// Start (or ask again for) the paced drain of this pod.
    Drain {
        pod: String,
        connections: u64,
    },
    /// The pod's drain is over: remove exactly it and lower the count.
    Remove {
        pod: String,
        timed_out: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub memory: Memory,
    pub action: Action,
    /// For people: why this action (or why nothing).
    pub reason: String,
    /// Connections the readable pods reported.
    pub connections: u64,
    /// Pods whose sidecar did not answer.
    pub unknown: usize,
    /// Pods the load asks for, within min..=max.
    pub wanted: u32,
    /// When a scale-down may start, if load stays low.
    pub next_scale_down_ms: Option<u64>,
}

/// Pods for `connections`, within the policy's bounds.
pub fn wanted_for(policy: &Policy, connections: u64) -> u32 {
    let need = (connections.saturating_add(policy.buffer)).div_ceil(policy.target_per_pod.max(1));
    need.clamp(policy.min as u64, policy.max.max(policy.min) as u64) as u32
}

/// "1 connection", "3 connections".
pub fn plural(n: u64, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

/// "4005 connections want 2 pods", "1 connection wants 1 pod".
fn wants(connections: u64, pods: u32) -> String {
    let verb = if connections == 1 { "wants" } else { "want" };
    format!("{} {verb} {}", plural(connections, "connection"), plural(u64::from(pods), "pod"))
}

/// The next decision. `memory.replicas == 0` means "nothing remembered": start from the
/// pods that exist, within bounds.
pub fn decide(policy: &Policy, memory: &Memory, pods: &[PodLoad], now_ms: u64) -> Decision {
    let mut m = memory.clone();
    let (min, max) = (policy.min, policy.max.max(policy.min));
    if m.replicas == 0 {
        m.replicas = (pods.len() as u32).clamp(min.max(1), max);
    }
    let connections: u64 = pods.iter().filter_map(|p| p.connections).sum();
    let unknown: Vec<&PodLoad> = pods.iter().filter(|p| p.connections.is_none()).collect();
    let wanted = wanted_for(policy, connections);
    let mut d = Decision {
        memory: m.clone(),
        action: Action::Hold,
        reason: String::new(),
        connections,
        unknown: unknown.len(),
        wanted,
        next_scale_down_ms: None,
    };
    let draining = m.draining.is_some() as u32;
    let serving = m.replicas.saturating_sub(draining);

    // Up first: load that arrived does not wait for a drain to end.
    if wanted > serving {
        m.low_since_ms = None;
        let paced = m.last_scale_up_ms.is_some_and(|t| now_ms.saturating_sub(t) < SCALE_UP_PERIOD_MS);
        if paced && serving >= min {
            d.reason = format!("{}; the last scale-up was under 15s ago", wants(connections, wanted));
        } else {
            let step = SCALE_UP_MIN_STEP.max(serving);
            let to_serving = wanted.min(serving.saturating_add(step)).max(min);
            let from = m.replicas;
            m.replicas = to_serving + draining;
            m.last_scale_up_ms = Some(now_ms);
            d.action = Action::ScaleUp { from, to: m.replicas };
            d.reason = if serving < min {
                format!("fewer pods than gateway.replicas.min ({min})")
            } else {
                format!("{} at {} per pod", wants(connections, wanted), policy.target_per_pod)
            };
        }
    }

    // A drain in progress runs to its end whatever else happens.
    if let Some(dr) = m.draining.clone() {
        let pod = pods.iter().find(|p| p.name == dr.pod);
        let timed_out = now_ms.saturating_sub(dr.since_ms) >= policy.drain_timeout_ms + DRAIN_MARGIN_MS;
        let over = match pod {
            None => Some("it is gone".to_string()),
            Some(p) if p.drain == PodDrain::Finished => Some("its drain finished".to_string()),
            Some(_) if timed_out => Some("its drain timed out".to_string()),
            _ => None,
        };
        if let Some(why) = over {
            if d.action == Action::Hold {
                m.replicas = m.replicas.saturating_sub(1).max(min);
                m.draining = None;
                d.action = Action::Remove { pod: dr.pod.clone(), timed_out: why.contains("timed out") };
                d.reason = format!("removing {}: {why}", dr.pod);
            }
        } else if d.action == Action::Hold {
            match pod.map(|p| p.drain) {
                Some(PodDrain::Draining { remaining }) => {
                    d.reason = format!("draining {}: {} still open", dr.pod, plural(remaining, "connection"))
                }
                _ => {
                    // The sidecar does not know it is draining (it restarted): ask again.
                    let connections = pod.and_then(|p| p.connections).unwrap_or(0);
                    d.action = Action::Drain { pod: dr.pod.clone(), connections };
                    d.reason = format!("asking {} again to drain: it was not draining", dr.pod);
                }
            }
        }
        d.memory = m;
        return d;
    }
    if d.action != Action::Hold || !d.reason.is_empty() {
        d.memory = m;
        return d;
    }

    // Down: one pod, after the window, with every pod readable.
    let over_max = serving > max;
    let low = serving > min
        && wanted < serving
        && (connections.saturating_add(policy.buffer)) as f64 <= (serving - 1) as f64 * policy.target_per_pod as f64 * DOWN_TOLERANCE;
    if !low && !over_max {
        m.low_since_ms = None;
        d.reason = format!("{} on {} want {wanted}", plural(connections, "connection"), plural(serving as u64, "pod"));
        d.memory = m;
        return d;
    }
    if let Some(p) = unknown.first() {
        m.low_since_ms = None;
        d.reason = format!("not scaling down: {} did not report its connections", p.name);
        d.memory = m;
        return d;
    }
    let since = *m.low_since_ms.get_or_insert(now_ms);
    let at = since.saturating_add(policy.stabilization_ms);
    if !over_max && now_ms < at {
        d.next_scale_down_ms = Some(at);
        // No countdown in the text: a status that only counts down would be a write per pass.
        d.reason = format!("{}; one pod fewer if load stays this low for {}s", wants(connections, wanted), policy.stabilization_ms / 1000);
        d.memory = m;
        return d;
    }
    let Some(victim) = pods
        .iter()
        .filter(|p| p.drain == PodDrain::None)
        .min_by_key(|p| (p.ready, p.connections.unwrap_or(0), std::cmp::Reverse(p.name.clone())))
    else {
        d.reason = "no pod to drain".into();
        d.memory = m;
        return d;
    };
    let conns = victim.connections.unwrap_or(0);
    m.draining = Some(Draining { pod: victim.name.clone(), since_ms: now_ms });
    d.action = Action::Drain { pod: victim.name.clone(), connections: conns };
    d.reason = if over_max {
        format!("more pods than gateway.replicas.max ({max}): draining {} ({})", victim.name, plural(conns, "connection"))
    } else {
        format!(
            "{} for {}s: draining {} ({})",
            wants(connections, wanted),
            policy.stabilization_ms / 1000,
            victim.name,
            plural(conns, "connection")
        )
    };
    d.memory = m;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { target_per_pod: 100, buffer: 0, min: 1, max: 10, stabilization_ms: 60_000, drain_timeout_ms: 30_000 };

    fn pod(name: &str, connections: u64) -> PodLoad {
        PodLoad { name: name.into(), ready: true, connections: Some(connections), drain: PodDrain::None }
    }

    #[test]
    fn rebalancing_sheds_only_the_excess_of_pods_well_above_the_mean_and_only_when_all_is_known() {
        // After a scale-up from 2 to 4: 1000, 1000, 0, 0 (mean 500). 5 s at 5%/s: 250 each.
        let pods = [pod("a", 1000), pod("b", 1000), pod("c", 0), pod("d", 0)];
        assert_eq!(rebalance(&pods, 5_000), [Shed { pod: "a".into(), count: 250 }, Shed { pod: "b".into(), count: 250 }]);
        // Near the mean: within 20%, or within 2 connections for small counts.
        assert!(rebalance(&[pod("a", 110), pod("b", 90)], 5_000).is_empty());
        assert!(rebalance(&[pod("a", 7), pod("b", 5), pod("c", 3)], 5_000).is_empty());
        // Never more than the excess: 30 over a mean of 10 sheds 20, not 5%/s × 60 s of 30.
        assert_eq!(rebalance(&[pod("a", 30), pod("b", 0), pod("c", 0)], 60_000), [Shed { pod: "a".into(), count: 20 }]);
        // A small excess sheds at least one connection per pass.
        assert_eq!(rebalance(&[pod("a", 9), pod("b", 1)], 1_000), [Shed { pod: "a".into(), count: 1 }]);
        // Nothing while a pod is unknown, not ready or draining.
        let mut unknown = pods.clone();
        unknown[3].connections = None;
        assert!(rebalance(&unknown, 5_000).is_empty());
        let mut starting = pods.clone();
        starting[2].ready = false;
        assert!(rebalance(&starting, 5_000).is_empty());
        let mut draining = pods.clone();
        draining[0].drain = PodDrain::Draining { remaining: 1000 };
        assert!(rebalance(&draining, 5_000).is_empty());
        assert!(rebalance(&[pod("a", 1000)], 5_000).is_empty(), "one pod has no one to shed to");
    }

    #[test]
    fn rebalancing_converges_when_shed_clients_land_anywhere() {
        // Shed clients come back through a Service that picks any pod (here: round-robin
        // over all pods, the shedding one included), as kube-proxy does at random.
        let mut pods = vec![pod("a", 3000), pod("b", 3000), pod("c", 0), pod("d", 0), pod("e", 0), pod("f", 0)];
        let mut next = 0usize;
        let mut passes = 0;
        while !balanced(&pods) {
            passes += 1;
            assert!(passes <= 40, "spread {:?} after 40 passes of 5 s: {pods:?}", spread(&pods));
            let sheds = rebalance(&pods, 5_000);
            assert!(!sheds.is_empty(), "unbalanced but nothing shed: {pods:?}");
            let mut moving = 0;
            for s in sheds {
                let p = pods.iter_mut().find(|p| p.name == s.pod).expect("pod");
                p.connections = Some(p.connections.unwrap_or(0) - s.count);
                moving += s.count;
            }
            for _ in 0..moving {
                let n = pods.len();
                pods[next % n].connections = pods[next % n].connections.map(|c| c + 1);
                next += 1;
            }
        }
        let total: u64 = pods.iter().filter_map(|p| p.connections).sum();
        assert_eq!(total, 6000, "no connection lost by rebalancing");
        eprintln!("MEASURE rebalancing 3000/3000/0/0/0/0: balanced after {passes} passes of 5 s, spread {:?}", spread(&pods));
        assert!(passes <= 12, "balanced within a minute at 5%/s: {passes} passes");
    }

    /// A fleet that follows the decisions: pods appear when asked for (empty, ready),
    /// drains finish one step after they start, and the load is spread evenly.
    struct Sim {
        memory: Memory,
        pods: Vec<PodLoad>,
        next: u32,
        log: Vec<(u64, Action)>,
    }

    impl Sim {
        fn new(replicas: u32) -> Sim {
            let mut s = Sim { memory: Memory { replicas, ..Memory::default() }, pods: Vec::new(), next: 0, log: Vec::new() };
            for _ in 0..replicas {
                s.add();
            }
            s
        }

        fn add(&mut self) {
            self.pods.push(pod(&format!("p{}", self.next), 0));
            self.next += 1;
        }

        fn step(&mut self, now_ms: u64, load: u64) -> Decision {
            let serving: Vec<usize> = (0..self.pods.len()).filter(|&i| self.pods[i].drain == PodDrain::None).collect();
            for (k, &i) in serving.iter().enumerate() {
                let share = load / serving.len() as u64 + u64::from((k as u64) < load % serving.len() as u64);
                self.pods[i].connections = Some(share);
            }
            for p in self.pods.iter_mut() {
                if let PodDrain::Draining { .. } = p.drain {
                    p.drain = PodDrain::Finished;
                    p.connections = Some(0);
                }
            }
            let d = decide(&POLICY, &self.memory, &self.pods, now_ms);
            match &d.action {
                Action::ScaleUp { from, to } => (0..to - from).for_each(|_| self.add()),
                Action::Drain { pod, .. } => {
                    let p = self.pods.iter_mut().find(|p| &p.name == pod).expect("victim exists");
                    p.drain = PodDrain::Draining { remaining: p.connections.unwrap_or(0) };
                }
                Action::Remove { pod, .. } => self.pods.retain(|p| &p.name != pod),
                Action::Hold => {}
            }
            if d.action != Action::Hold {
                self.log.push((now_ms, d.action.clone()));
            }
            self.memory = d.memory.clone();
            d
        }

        /// One decision every 5 s over `trace` (one load per step).
        fn run(&mut self, trace: &[u64]) {
            for (i, &load) in trace.iter().enumerate() {
                self.step(i as u64 * 5_000, load);
            }
        }

        fn changes(&self) -> usize {
            self.log.iter().filter(|(_, a)| matches!(a, Action::ScaleUp { .. } | Action::Remove { .. })).count()
        }
    }

    #[test]
    fn wanted_pods_follow_connections_within_bounds() {
        assert_eq!(wanted_for(&POLICY, 0), 1);
        assert_eq!(wanted_for(&POLICY, 100), 1);
        assert_eq!(wanted_for(&POLICY, 101), 2);
        assert_eq!(wanted_for(&POLICY, 1_000_000), 10);
        assert_eq!(wanted_for(&Policy { buffer: 50, ..POLICY }, 60), 2);
        assert_eq!(wanted_for(&Policy { target_per_pod: 0, ..POLICY }, 3), 3, "a zero target counts as one");
    }

    #[test]
    fn a_ramp_scales_up_in_bounded_steps_and_never_down() {
        let mut sim = Sim::new(1);
        let ramp: Vec<u64> = (0..40).map(|i| i * 25).collect(); // 0 → 975 connections over 200 s
        sim.run(&ramp);
        assert_eq!(sim.memory.replicas, 10, "{:?}", sim.log);
        assert!(sim.log.iter().all(|(_, a)| matches!(a, Action::ScaleUp { .. })), "{:?}", sim.log);
        for w in sim.log.windows(2) {
            assert!(w[1].0 - w[0].0 >= SCALE_UP_PERIOD_MS, "scale-ups paced: {:?}", sim.log);
        }
    }

    #[test]
    fn a_spike_adds_at_most_four_pods_or_double_at_once() {
        let mut sim = Sim::new(1);
        let d = sim.step(0, 950);
        assert_eq!(d.action, Action::ScaleUp { from: 1, to: 5 }, "{d:?}");
        let d = sim.step(5_000, 950);
        assert_eq!(d.action, Action::Hold, "paced: {d:?}");
        let d = sim.step(15_000, 950);
        assert_eq!(d.action, Action::ScaleUp { from: 5, to: 10 }, "100% of 5: {d:?}");
    }

    #[test]
    fn load_leaving_drains_one_pod_at_a_time_after_the_window() {
        let mut sim = Sim::new(4);
        let mut trace = vec![350; 4];
        trace.extend(vec![50; 60]);
        sim.run(&trace);
        assert_eq!(sim.memory.replicas, 1, "{:?}", sim.log);
        let first = sim.log.iter().find(|(_, a)| matches!(a, Action::Drain { .. })).expect("a drain");
        assert!(first.0 >= 20_000 + POLICY.stabilization_ms, "only after the window: {:?}", sim.log);
        // Strictly drain, remove, drain, remove …: never two pods draining at once.
        let kinds: Vec<&str> = sim
            .log
            .iter()
            .map(|(_, a)| match a {
                Action::Drain { .. } => "drain",
                Action::Remove { .. } => "remove",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["drain", "remove", "drain", "remove", "drain", "remove"], "{:?}", sim.log);
    }

    #[test]
    fn load_hovering_at_a_threshold_does_not_flap() {
        let mut sim = Sim::new(1);
        let trace: Vec<u64> = (0..200).map(|i| if i % 2 == 0 { 95 } else { 105 }).collect();
        sim.run(&trace);
        assert_eq!(sim.changes(), 1, "one scale-up to 2, then steady: {:?}", sim.log);
        assert_eq!(sim.memory.replicas, 2);
    }

    #[test]
    fn a_failover_blip_is_not_lost_load() {
        // Redis failover: every sidecar is not ready for a while, connections stay; then one
        // sidecar restarts and does not answer for two steps.
        let mut m = Memory { replicas: 3, ..Memory::default() };
        let mut pods = vec![pod("a", 100), pod("b", 100), pod("c", 100)];
        for p in pods.iter_mut() {
            p.ready = false;
        }
        let d = decide(&POLICY, &m, &pods, 0);
        assert_eq!((d.action.clone(), d.connections), (Action::Hold, 300), "{d:?}");
        m = d.memory;
        pods[0].connections = None;
        pods[1].connections = Some(20);
        pods[2].connections = Some(20);
        for t in [5_000, 10_000, 100_000] {
            let d = decide(&POLICY, &m, &pods, t);
            assert_eq!(d.action, Action::Hold, "{d:?}");
            assert!(d.reason.contains("a did not report"), "{}", d.reason);
            assert_eq!(d.memory.low_since_ms, None, "the window does not run while a pod is unknown");
            m = d.memory;
        }
    }

    #[test]
    fn clients_reconnecting_in_a_burst_do_not_scale_down() {
        let mut sim = Sim::new(3);
        let mut trace = vec![290; 10];
        trace.extend([0, 0, 40, 150]); // 20 s of a reconnect storm
        trace.extend(vec![290; 30]);
        sim.run(&trace);
        assert_eq!(sim.changes(), 0, "{:?}", sim.log);
        assert!(!sim.log.iter().any(|(_, a)| matches!(a, Action::Drain { .. })), "{:?}", sim.log);
    }

    #[test]
    fn the_victim_is_a_not_ready_pod_then_the_emptiest() {
        let m = Memory { replicas: 3, low_since_ms: Some(0), ..Memory::default() };
        let mut pods = vec![pod("a", 10), pod("b", 3), pod("c", 7)];
        let d = decide(&POLICY, &m, &pods, 100_000);
        assert_eq!(d.action, Action::Drain { pod: "b".into(), connections: 3 }, "{d:?}");
        pods[2].ready = false;
        let d = decide(&POLICY, &m, &pods, 100_000);
        assert_eq!(d.action, Action::Drain { pod: "c".into(), connections: 7 }, "{d:?}");
    }

    #[test]
    fn a_drain_ends_in_a_removal_when_finished_gone_or_timed_out() {
        let m = Memory { replicas: 3, draining: Some(Draining { pod: "b".into(), since_ms: 0 }), ..Memory::default() };
        let mut pods = vec![pod("a", 10), pod("b", 3), pod("c", 7)];
        pods[1].drain = PodDrain::Draining { remaining: 3 };
        let d = decide(&POLICY, &m, &pods, 5_000);
        assert_eq!(d.action, Action::Hold, "{d:?}");
        assert!(d.reason.contains("3 connections still open"), "{}", d.reason);
        let late = POLICY.drain_timeout_ms + DRAIN_MARGIN_MS;
        let d = decide(&POLICY, &m, &pods, late);
        assert_eq!(d.action, Action::Remove { pod: "b".into(), timed_out: true });
        assert_eq!((d.memory.replicas, d.memory.draining), (2, None));
        pods[1].drain = PodDrain::Finished;
        assert_eq!(decide(&POLICY, &m, &pods, 6_000).action, Action::Remove { pod: "b".into(), timed_out: false });
        pods.remove(1);
        assert_eq!(decide(&POLICY, &m, &pods, 6_000).action, Action::Remove { pod: "b".into(), timed_out: false });
        // A sidecar that restarted mid-drain is asked again.
        let pods = vec![pod("a", 10), pod("b", 0), pod("c", 7)];
        assert_eq!(decide(&POLICY, &m, &pods, 6_000).action, Action::Drain { pod: "b".into(), connections: 0 });
    }

    #[test]
    fn load_arriving_during_a_drain_scales_up_and_the_drain_still_ends() {
        let m = Memory { replicas: 2, draining: Some(Draining { pod: "b".into(), since_ms: 0 }), ..Memory::default() };
        let mut pods = vec![pod("a", 250), pod("b", 0)];
        pods[1].drain = PodDrain::Draining { remaining: 0 };
        let d = decide(&POLICY, &m, &pods, 1_000);
        assert_eq!(d.action, Action::ScaleUp { from: 2, to: 4 }, "3 serving + the draining one: {d:?}");
        pods[1].drain = PodDrain::Finished;
        let d = decide(&POLICY, &d.memory, &pods, 2_000);
        assert_eq!(d.action, Action::Remove { pod: "b".into(), timed_out: false });
        assert_eq!(d.memory.replicas, 3);
    }

    #[test]
    fn bounds_are_kept_when_the_spec_changes() {
        let pods = vec![pod("a", 0), pod("b", 0)];
        let d = decide(&Policy { min: 4, ..POLICY }, &Memory { replicas: 2, ..Memory::default() }, &pods, 0);
        assert_eq!(d.action, Action::ScaleUp { from: 2, to: 4 });
        let d = decide(&Policy { max: 1, ..POLICY }, &Memory { replicas: 2, ..Memory::default() }, &pods, 0);
        assert!(matches!(d.action, Action::Drain { .. }), "over max drains at once: {d:?}");
        let d = decide(&POLICY, &Memory::default(), &pods, 0);
        assert_eq!(d.memory.replicas, 2, "nothing remembered: the pods that exist");
    }
}
