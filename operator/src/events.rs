//! Events on a fleet: every error once when it first appears, every Redis topology change
//! and Sentinel repair, every failover seen, every generated Secret restored. Each is counted as a write.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use socketfleet_api::crd::{Failover, SocketFleet};

use crate::metrics::ReasonLabel;
use crate::reconcile::Context;
use crate::redis_cluster::Report;

fn recorder(ctx: &Context) -> Recorder {
    Recorder::new(ctx.client.clone(), ctx.reporter.clone())
}

pub async fn publish(fleet: &SocketFleet, ctx: &Context, type_: EventType, reason: &str, note: String, action: &str) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    ctx.metrics.write("Event", "create");
    if let Err(e) = recorder(ctx).publish(&event, &fleet.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// One Event per action of the Redis admin pass.
pub async fn redis_actions(fleet: &SocketFleet, ctx: &Context, report: &Report) {
    for a in &report.actions {
        ctx.metrics.redis_actions.get_or_create(&ReasonLabel { reason: a.reason() }).inc();
        let type_ = if a.is_warning() { EventType::Warning } else { EventType::Normal };
        publish(fleet, ctx, type_, a.reason(), a.to_string(), "HealRedis").await;
    }
}

/// One Event per action of the Sentinel supervision pass.
pub async fn sentinel_actions(fleet: &SocketFleet, ctx: &Context, report: &crate::redis_sentinel::Report) {
    for a in &report.actions {
        ctx.metrics.redis_actions.get_or_create(&ReasonLabel { reason: a.reason() }).inc();
        let type_ = if a.is_warning() { EventType::Warning } else { EventType::Normal };
        publish(fleet, ctx, type_, a.reason(), a.to_string(), "SuperviseSentinels").await;
    }
}

/// A primary replaced by another pod.
pub async fn failover(fleet: &SocketFleet, ctx: &Context, f: &Failover) {
    let note = format!("primary {} replaced by {}", f.from.join(", "), f.to.join(", "));
    publish(fleet, ctx, EventType::Warning, "RedisFailover", note, "WatchRedis").await;
}

/// A generated Secret someone deleted, recreated with the value the pods use.
pub async fn secret_restored(fleet: &SocketFleet, ctx: &Context, name: &str) {
    let note = format!("Secret {name} was deleted; recreated with the value the running pods use");
    publish(fleet, ctx, EventType::Warning, "SecretRestored", note, "RestoreSecret").await;
}
