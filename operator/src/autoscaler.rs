//! The builtin connection autoscaler's step in reconcile (`autoscaling.enabled`, mode
//! `builtin`): observed gateway pods → `socketfleet_api::autoscale::decide` → its one
//! action carried out → `status.autoscaler`.
//!
//! What it remembers (the replicas it set, since when load is low, the pod it drains, the
//! last action) lives in `status.autoscaler`, so a restarted or new leader carries on; the
//! last status per fleet is also kept in memory, because the fleet a reconcile is handed may
//! predate the status this operator just wrote (and would put an older decision back).
//!
//! A scale-down is owned here, not left to the ReplicaSet: the victim is drained with
//! `POST /drain?hold=true` (it drains, then stays not ready until its pod goes), and once it
//! reports the drain finished (or the drain timeout passed) it gets the lowest
//! `controller.kubernetes.io/pod-deletion-cost` and the replicas drop by one, so the
//! ReplicaSet removes exactly that pod. Every action is an Event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use socketfleet_api::admin::{DrainStatus, PATH_DRAIN, QUERY_HOLD};
use socketfleet_api::autoscale::{Action, Decision, Draining, Memory, PodDrain, PodLoad, Policy, decide};
use socketfleet_api::crd::{AutoscalerStatus, DrainingPod, GatewayPodStatus, SocketFleet};

use crate::apply::FIELD_MANAGER;
use crate::children::Ctx;
use crate::events;
use crate::observe::GatewayPod;
use crate::reconcile::Context;

/// The annotation the ReplicaSet controller ranks pods by when it removes some (lowest
/// first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// How long the drain request may take.
const DRAIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The last `status.autoscaler` per fleet (uid), newer than any status a reconcile may be
/// handed.
#[derive(Default)]
pub struct Memories(Mutex<HashMap<String, AutoscalerStatus>>);

impl Memories {
    fn get(&self, uid: &str) -> Option<AutoscalerStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(uid).cloned()
    }

    /// None forgets (autoscaling turned off: a later enable starts from the status).
    pub fn set(&self, uid: &str, m: Option<AutoscalerStatus>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m {
            Some(m) => map.insert(uid.to_string(), m),
            None => map.remove(uid),
        };
    }
}

fn ms(t: &Option<String>) -> Option<u64> {
    t.as_deref().and_then(|s| s.parse::<Timestamp>().ok()).map(|t| t.as_millisecond().max(0) as u64)
}

fn time(ms: u64) -> String {
    Timestamp::from_millisecond(ms as i64).map(|t| t.to_string()).unwrap_or_default()
}

/// What the status remembers, after an operator restart.
pub fn memory_from_status(s: &AutoscalerStatus) -> Memory {
    Memory {
        replicas: s.replicas.max(0) as u32,
        low_since_ms: ms(&s.low_since),
        last_scale_up_ms: ms(&s.last_scale_up_time),
        draining: s.draining.as_ref().and_then(|d| Some(Draining { pod: d.pod.clone(), since_ms: ms(&Some(d.since.clone()))? })),
    }
}

fn pod_drain(d: &DrainStatus) -> PodDrain {
    if d.finished {
        PodDrain::Finished
    } else if d.draining {
        PodDrain::Draining { remaining: d.remaining }
    } else {
        PodDrain::None
    }
}

/// The pods the decision sees: terminating ones are already going.
pub fn loads(pods: &[GatewayPod]) -> Vec<PodLoad> {
    pods.iter()
        .filter(|p| !p.terminating)
        .map(|p| PodLoad {
            name: p.name.clone(),
            ready: p.ready,
            connections: p.sidecar.as_ref().map(|s| s.connections),
            drain: p.sidecar.as_ref().map(|s| pod_drain(&s.drain)).unwrap_or_default(),
        })
        .collect()
}

fn pod_state(p: &PodLoad) -> &'static str {
    match (p.connections, p.drain, p.ready) {
        (None, _, _) => "Unknown",
        (_, PodDrain::Finished, _) => "Drained",
        (_, PodDrain::Draining { .. }, _) => "Draining",
        (_, PodDrain::None, true) => "Ready",
        (_, PodDrain::None, false) => "NotReady",
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Hold => "Hold",
        Action::ScaleUp { .. } => "ScaleUp",
        Action::Drain { .. } => "Drain",
        Action::Remove { .. } => "Remove",
    }
}

/// The status the decision leaves (the last action and its time survive a Hold).
pub fn status_of(prev: Option<&AutoscalerStatus>, d: &Decision, pods: &[PodLoad], now_ms: u64) -> AutoscalerStatus {
    let acted = d.action != Action::Hold;
    let m = &d.memory;
    AutoscalerStatus {
        connections: d.connections as i64,
        unknown_pods: d.unknown as i32,
        wanted: d.wanted as i32,
        replicas: m.replicas as i32,
        last_decision: if acted { action_name(&d.action).into() } else { prev.map(|p| p.last_decision.clone()).unwrap_or("Hold".into()) },
        reason: d.reason.clone(),
        last_decision_time: if acted { Some(time(now_ms)) } else { prev.and_then(|p| p.last_decision_time.clone()) },
        next_scale_down_time: d.next_scale_down_ms.map(time),
        low_since: m.low_since_ms.map(time),
        last_scale_up_time: m.last_scale_up_ms.map(time),
        draining: m.draining.as_ref().map(|dr| DrainingPod { pod: dr.pod.clone(), since: time(dr.since_ms) }),
        pods: pods
            .iter()
            .map(|p| GatewayPodStatus { name: p.name.clone(), state: pod_state(p).into(), connections: p.connections.map(|c| c as i64) })
            .collect(),
        spread: socketfleet_api::autoscale::spread(pods).map(|s| format!("{s:.2}")),
    }
}

/// Runs one decision for `fleet` over `pods` and carries out its action. Returns the new
/// `status.autoscaler`; `fleet`'s replicas follow its `replicas`.
pub async fn step(fleet: &SocketFleet, ctx: &Context, c: &Ctx<'_>, pods: &[GatewayPod]) -> AutoscalerStatus {
    let uid = fleet.metadata.uid.clone().unwrap_or_default();
    let remembered = ctx.autoscaler.get(&uid);
    let prev = remembered.as_ref().or(fleet.status.as_ref().and_then(|s| s.autoscaler.as_ref()));
    let memory = prev.map(memory_from_status).unwrap_or_default();
    let now_ms = Timestamp::now().as_millisecond().max(0) as u64;
    let loads = loads(pods);
    let d = decide(&Policy::from_spec(&fleet.spec), &memory, &loads, now_ms);
    let ip_of = |name: &str| pods.iter().find(|p| p.name == name).and_then(|p| p.ip.clone());
    match &d.action {
        Action::Hold => {}
        Action::ScaleUp { from, to } => {
            let note = format!("{from} → {to} gateway pods: {}", d.reason);
            events::publish(fleet, ctx, EventType::Normal, "ScaledUp", note, "Autoscale").await;
        }
        Action::Drain { pod, .. } => {
            let started = match ip_of(pod) {
                Some(ip) => start_drain(&ip).await,
                None => Err("it has no address".into()),
            };
            let (type_, note) = match started {
                Ok(()) => (EventType::Normal, format!("Draining {pod} before removing it: {}", d.reason)),
                Err(e) => (EventType::Warning, format!("Could not start the drain of {pod} ({e}); asking again next pass")),
            };
            events::publish(fleet, ctx, type_, "DrainingPod", note, "Autoscale").await;
        }
        Action::Remove { pod, timed_out } => {
            mark_for_removal(ctx, c, pod).await;
            let (type_, reason) = if *timed_out { (EventType::Warning, "DrainTimedOut") } else { (EventType::Normal, "ScaledDown") };
            let note = format!("{} → {} gateway pods: {}", memory.replicas, d.memory.replicas, d.reason);
            events::publish(fleet, ctx, type_, reason, note, "Autoscale").await;
        }
    }
    if d.action != Action::Hold {
        tracing::info!(action = action_name(&d.action), reason = %d.reason, replicas = d.memory.replicas, "autoscaler");
    }
    let status = status_of(prev, &d, &loads, now_ms);
    ctx.autoscaler.set(&uid, Some(status.clone()));
    status
}

async fn start_drain(ip: &str) -> Result<(), String> {
    let addr = crate::observe::admin_addr(ip);
    let path = format!("{PATH_DRAIN}?{QUERY_HOLD}");
    socketfleet_plumbing::http_client::post_json::<DrainStatus>(&addr, &path, DRAIN_REQUEST_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The lowest deletion cost on exactly the drained pod, just before the replicas drop.
async fn mark_for_removal(ctx: &Context, c: &Ctx<'_>, pod: &str) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let patch = json!({"metadata": {"annotations": {DELETION_COST: i32::MIN.to_string()}}});
    ctx.metrics.write("Pod", "patch");
    match api.patch(pod, &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch)).await {
        Ok(p) => tracing::debug!(pod = %p.name_any(), "marked for removal"),
        // Already gone: the replicas drop removes nothing else, since the count follows it.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(pod, error = %e, "could not set the pod's deletion cost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_survives_the_status() {
        let m = Memory {
            replicas: 4,
            low_since_ms: Some(1_700_000_000_000),
            last_scale_up_ms: Some(1_700_000_100_000),
            draining: Some(Draining { pod: "chat-gateway-x".into(), since_ms: 1_700_000_200_000 }),
        };
        let d = Decision {
            memory: m.clone(),
            action: Action::Hold,
            reason: "r".into(),
            connections: 3,
            unknown: 0,
            wanted: 3,
            next_scale_down_ms: None,
        };
        let s = status_of(None, &d, &[], 0);
        assert_eq!(s.low_since.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(memory_from_status(&s), m);
    }

    #[test]
    fn pods_are_shown_in_their_drain_state() {
        let pod = |name: &str, ready: bool, sidecar: Option<DrainStatus>| GatewayPod {
            name: name.into(),
            ip: Some("10.0.0.1".into()),
            ready,
            terminating: false,
            sidecar: sidecar.map(|drain| socketfleet_api::admin::SidecarStatus {
                node: name.into(),
                ready,
                not_ready_reason: None,
                connections: 2,
                drain,
                shed: 0,
            }),
        };
        let draining = DrainStatus { draining: true, remaining: 2, ..DrainStatus::default() };
        let finished = DrainStatus { draining: true, finished: true, ..DrainStatus::default() };
        let mut gone = pod("e", true, None);
        gone.terminating = true;
        let pods = [
            pod("a", true, Some(DrainStatus::default())),
            pod("b", false, Some(DrainStatus::default())),
            pod("c", false, Some(draining)),
            pod("d", false, Some(finished)),
            pod("u", true, None),
            gone,
        ];
        let loads = loads(&pods);
        let states: Vec<&str> = loads.iter().map(pod_state).collect();
        assert_eq!(states, ["Ready", "NotReady", "Draining", "Drained", "Unknown"], "terminating pods left out");
    }
}
