//! Rebalancing after a scale-up (`autoscaling.rebalance`, either mode): new gateway pods
//! start empty and a Service never moves a connection that is open, so each pass the pods
//! well above the mean are asked to hand some connections off (`POST /shed`, the drain's
//! lossless handoff, paced over the pass). Which pods and how many is
//! `socketfleet_api::autoscale::rebalance`'s; the clients reconnect through the Service,
//! which picks a pod at random, so a shed pod may get some back and the next pass sheds
//! again, less.
//!
//! An Event when a rebalance starts (the spread and what is shed) and one when the spread is
//! within the tolerance again, with how long it took; nothing per pass in between.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::events::EventType;
use socketfleet_api::admin::{PATH_SHED, ShedReply, shed_query};
use socketfleet_api::autoscale::{PodLoad, REBALANCE_TOLERANCE, balanced, rebalance, spread};
use socketfleet_api::crd::SocketFleet;

use crate::events;
use crate::observe::GatewayPod;
use crate::reconcile::Context;

const SHED_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Fleets (by uid) being rebalanced, and since when.
#[derive(Default)]
pub struct Rebalances(Mutex<HashMap<String, Instant>>);

impl Rebalances {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One pass: asks the pods above the mean to shed over `period`.
pub async fn step(fleet: &SocketFleet, ctx: &Context, pods: &[GatewayPod], loads: &[PodLoad], period: Duration) {
    let uid = fleet.metadata.uid.clone().unwrap_or_default();
    let sheds = rebalance(loads, period.as_millis() as u64);
    let started = ctx.rebalances.map().get(&uid).copied();
    if sheds.is_empty() {
        if let (Some(since), true) = (started, balanced(loads)) {
            ctx.rebalances.map().remove(&uid);
            let note = format!(
                "Connections spread within {:.0}% of the mean again after {:.0}s",
                REBALANCE_TOLERANCE * 100.0,
                since.elapsed().as_secs_f64()
            );
            events::publish(fleet, ctx, EventType::Normal, "Rebalanced", note, "Rebalance").await;
        }
        return;
    }
    let mut told = Vec::new();
    for s in &sheds {
        let Some(ip) = pods.iter().find(|p| p.name == s.pod).and_then(|p| p.ip.clone()) else { continue };
        match shed(&ip, s.count, period).await {
            Ok(0) => {}
            Ok(n) => told.push(format!("{} sheds {n}", s.pod)),
            Err(e) => tracing::warn!(pod = %s.pod, error = %e, "shed request failed"),
        }
    }
    if started.is_none() && !told.is_empty() {
        ctx.rebalances.map().insert(uid, Instant::now());
        let note = format!("The fullest pod holds {:.2}× the mean: {}", spread(loads).unwrap_or(0.0), told.join(", "));
        events::publish(fleet, ctx, EventType::Normal, "Rebalancing", note, "Rebalance").await;
    }
}

/// Forgets a fleet's rebalance (rebalancing turned off, a drain started).
pub fn forget(ctx: &Context, fleet: &SocketFleet) {
    ctx.rebalances.map().remove(&fleet.metadata.uid.clone().unwrap_or_default());
}

async fn shed(ip: &str, count: u64, over: Duration) -> Result<u64, String> {
    let addr = crate::observe::admin_addr(ip);
    let path = format!("{PATH_SHED}?{}", shed_query(count, over.as_millis() as u64));
    socketfleet_plumbing::http_client::post_json::<ShedReply>(&addr, &path, SHED_REQUEST_TIMEOUT)
        .await
        .map(|r| r.shedding)
        .map_err(|e| e.to_string())
}
