//! The controller: for each `SocketFleet`, validate → build → apply → observe → status.
//!
//! `reconcile` and `error_policy` are free functions over a shared [`Context`]; this file
//! keeps only the pipeline. Observation is `observe.rs`, Events are `events.rs`. Errors are
//! written into the status (Degraded, with the error's fixed reason) and announced with a
//! Warning Event when they first appear; a fleet that keeps failing is retried with a
//! growing delay (5 s doubling to 5 min) instead of every 5 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use socketfleet_api::admission::validate;
use socketfleet_api::autoscale::Policy;
use socketfleet_api::crd::{RedisMode, SocketFleet, SocketFleetStatus};
use tracing::Instrument;

use crate::apply::{FIELD_MANAGER, apply_all};
use crate::autoscaler::{self, Memories};
use crate::children::gateway::desired_replicas;
use crate::children::{COMPONENT_GATEWAY, Ctx, LABEL_MANAGED_BY, MANAGER, build};
use crate::error::{Error, Result};
use crate::events;
use crate::generated::{SecretMemory, generated};
use crate::metrics::{Metrics, ReasonLabel};
use crate::observe;
use crate::operations;
use crate::rebalance::{self, Rebalances};
use crate::status::{GatewayObserved, Observed, RedisObserved, derive, draining_condition};

/// How soon a fleet that is still coming up is looked at again.
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(5);
/// How often a settled fleet is checked (reads only, unless something changed).
const REQUEUE_SETTLED: Duration = Duration::from_secs(60);
/// How soon the next step of a reshard runs (each pass moves slots for a few seconds).
const REQUEUE_RESHARDING: Duration = Duration::from_secs(1);
/// How often the builtin autoscaler decides (reads connections each time).
const REQUEUE_AUTOSCALED: Duration = Duration::from_secs(5);
/// The longest wait between retries of a failing fleet.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// Generated Secret values seen, so a deleted Secret is recreated with the same value.
    pub secrets: SecretMemory,
    /// The last spec each fleet (by uid) was reconciled with: the "old" object of the
    /// CRD's rules about changes.
    last_valid: Mutex<HashMap<String, SocketFleet>>,
    /// Consecutive failures per fleet, for the retry delay.
    failures: Mutex<HashMap<String, u32>>,
    /// The builtin autoscaler's last decision per fleet.
    pub autoscaler: Memories,
    /// Fleets being rebalanced.
    pub rebalances: Rebalances,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, reporter: Reporter) -> Context {
        Context {
            client,
            metrics,
            reporter,
            secrets: SecretMemory::default(),
            last_valid: Mutex::default(),
            failures: Mutex::default(),
            autoscaler: Memories::default(),
            rebalances: Rebalances::default(),
        }
    }

    fn failed(&self, uid: &str) -> u32 {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn succeeded(&self, uid: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }
}

/// 5 s, 10 s, 20 s, … up to [`BACKOFF_MAX`].
pub fn backoff(failures: u32) -> Duration {
    REQUEUE_PROGRESSING.saturating_mul(1 << failures.saturating_sub(1).min(10)).min(BACKOFF_MAX)
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    reporter: Reporter,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let fleets: Api<SocketFleet> = Api::all(client.clone());
    let ours = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let ctx = Arc::new(Context::new(client.clone(), metrics, reporter));
    // Every kind the operator applies is watched: a hand edit or a deletion of any child
    // is seen at once, not at the next periodic pass.
    Controller::new(fleets, watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), ours.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), ours.clone())
        .owns(Api::<Service>::all(client.clone()), ours.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), ours.clone())
        .owns(Api::<Secret>::all(client.clone()), ours.clone())
        .owns(Api::<PodDisruptionBudget>::all(client), ours)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
}

pub async fn reconcile(fleet: Arc<SocketFleet>, ctx: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!("reconcile", fleet = %fleet.name_any(), ns = fleet.namespace().unwrap_or_default());
    let started = std::time::Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&fleet, &ctx).instrument(span).await;
    ctx.metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    let uid = fleet.metadata.uid.clone().unwrap_or_default();
    match result {
        Ok(action) => {
            ctx.succeeded(&uid);
            Ok(action)
        }
        Err(e) => {
            ctx.metrics.reconcile_errors.get_or_create(&ReasonLabel { reason: e.reason() }).inc();
            report_error(&fleet, &ctx, &e).await;
            Err(e)
        }
    }
}

pub fn error_policy(fleet: Arc<SocketFleet>, err: &Error, ctx: Arc<Context>) -> Action {
    if !err.retryable() {
        return Action::await_change();
    }
    Action::requeue(backoff(ctx.failed(&fleet.metadata.uid.clone().unwrap_or_default())))
}

async fn reconcile_inner(fleet: &SocketFleet, ctx: &Context) -> Result<Action> {
    let original = fleet;
    let namespace = fleet.namespace().ok_or(Error::NoNamespace)?;
    let uid = fleet.metadata.uid.clone().unwrap_or_default();
    let last = ctx.last_valid.lock().unwrap_or_else(|p| p.into_inner()).get(&uid).cloned();
    validate(fleet, last.as_ref())?;
    ctx.last_valid.lock().unwrap_or_else(|p| p.into_inner()).insert(uid.clone(), fleet.clone());
    check_referenced_secrets(fleet, &ctx.client, &namespace).await?;
    // The gateway pods are read before the apply: the autoscaler's decision sets the
    // replicas this pass applies.
    let pods = observe::gateway_pods(&ctx.client, &Ctx::new(fleet)).await?;
    let loads = autoscaler::loads(&pods);
    ctx.metrics.fleets.set(&namespace, &fleet.name_any(), &loads, &Policy::from_spec(&fleet.spec));
    let autoscaler = if fleet.spec.autoscaling.builtin() {
        Some(autoscaler::step(fleet, ctx, &Ctx::new(fleet), &pods).await)
    } else {
        ctx.autoscaler.set(&uid, None);
        None
    };
    let mut fleet_now = fleet.clone();
    fleet_now.status.get_or_insert_default().autoscaler = autoscaler.clone();
    let (generated, restored) = generated(&ctx.client, &Ctx::new(&fleet_now), &ctx.secrets).await?;
    // Redis is looked at (and healed, and resharded) before the apply: whether a scale-in
    // may shrink the StatefulSet yet depends on what the pods going away still hold.
    let redis = observe::redis(&ctx.client, &Ctx::new(&fleet_now), &generated.redis_password).await?;
    if let RedisObserved::Cluster { kept, .. } | RedisObserved::Sentinel { kept, .. } = &redis {
        fleet_now.status.get_or_insert_default().redis.kept_pods = *kept;
    }
    let fleet = &fleet_now;
    let c = Ctx::new(fleet);
    let writes = apply_all(&ctx.client, &c, build(fleet, &generated), &ctx.metrics).await?;
    if writes > 0 {
        tracing::info!(writes, "applied children");
    }
    for name in restored {
        events::secret_restored(fleet, ctx, &name).await;
    }
    let mut gateway = observe::gateway(&ctx.client, &c, &pods).await?;
    gateway.draining = autoscaler.as_ref().map_or(0, |a| i32::from(a.draining.is_some()));
    // Rebalance only a gateway at rest: every pod there is one the Deployment wants, none
    // drains (a scale-up whose pods are not up yet, or a drain, moves connections itself).
    let at_rest = gateway.draining == 0 && gateway.existing == gateway.desired && loads.len() == gateway.desired.max(0) as usize;
    if fleet.spec.autoscaling.enabled && fleet.spec.autoscaling.rebalance && at_rest {
        rebalance::step(fleet, ctx, &pods, &loads, REQUEUE_AUTOSCALED).await;
    } else {
        rebalance::forget(ctx, fleet);
    }
    let report = match &redis {
        RedisObserved::Cluster { report, .. } => report.clone(),
        _ => None,
    };
    let report = report.as_ref();
    if let Some(r) = report {
        events::redis_actions(fleet, ctx, r).await;
    }
    if let RedisObserved::Sentinel { report: Some(r), .. } = &redis {
        events::sentinel_actions(fleet, ctx, r).await;
    }
    let converged = report.is_none_or(|r| r.converged);
    let observed = Observed { generation: fleet.metadata.generation, gateway, redis, error: None };
    let now = Timestamp::now();
    let mut status = derive(fleet.status.as_ref(), &observed, now);
    if let Some(f) =
        status.redis.last_failover.as_ref().filter(|f| fleet.status.as_ref().is_none_or(|p| p.redis.last_failover.as_ref() != Some(*f)))
    {
        events::failover(fleet, ctx, f).await;
    }
    status.conditions.retain(|c| c.type_ != "Draining");
    if let Some(a) = &autoscaler {
        status.conditions.push(draining_condition(fleet.status.as_ref(), a, fleet.metadata.generation, now));
    }
    status.autoscaler = autoscaler;
    status.operations = operations::step(&status.operations, fleet.spec.redis.shard_count(), report, now);
    let resharding = operations::resharding(&status.operations);
    let settled = converged && status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    // `fleet` carries this pass's autoscaler status already: compare with what is stored.
    write_status(original, ctx, status).await?;
    // Autoscaling in either mode needs fresh counts: the builtin rule, rebalancing and the
    // connection metrics an HPA or KEDA reads.
    let every = if resharding {
        REQUEUE_RESHARDING
    } else if fleet.spec.autoscaling.enabled {
        REQUEUE_AUTOSCALED
    } else if settled {
        REQUEUE_SETTLED
    } else {
        REQUEUE_PROGRESSING
    };
    Ok(Action::requeue(every))
}

/// Secrets the spec references must exist with their key: a clear error beats pods that
/// crash-loop on a missing variable.
async fn check_referenced_secrets(fleet: &SocketFleet, client: &Client, namespace: &str) -> Result<()> {
    let spec = &fleet.spec;
    let refs = [
        spec.auth.jwt_secret_ref.as_ref(),
        spec.auth.public_key_secret_ref.as_ref(),
        spec.redis.external.as_ref().and_then(|e| e.password_secret_ref.as_ref()),
    ];
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for r in refs.into_iter().flatten() {
        let has_key = api.get_opt(&r.name).await?.and_then(|s| s.data).is_some_and(|d| d.contains_key(&r.key));
        if !has_key {
            return Err(Error::MissingSecretKey { name: r.name.clone(), key: r.key.clone() });
        }
    }
    Ok(())
}

/// Writes the status only when it changed: a settled fleet costs no writes.
async fn write_status(fleet: &SocketFleet, ctx: &Context, status: SocketFleetStatus) -> Result<()> {
    if fleet.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<SocketFleet> = Api::namespaced(ctx.client.clone(), &fleet.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": SocketFleet::api_version(&()), "kind": SocketFleet::kind(&()), "status": status});
    ctx.metrics.write("SocketFleet", "patch-status");
    api.patch_status(&fleet.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Puts an error into the status (Degraded and Ready with its reason) and announces it
/// once with a Warning Event.
async fn report_error(fleet: &SocketFleet, ctx: &Context, e: &Error) {
    let prev = fleet.status.clone().unwrap_or_default();
    let c = Ctx::new(fleet);
    let observed = Observed {
        generation: fleet.metadata.generation,
        gateway: GatewayObserved {
            desired: desired_replicas(&c),
            existing: 0,
            ready: prev.gateway.ready_replicas,
            updated: prev.gateway.ready_replicas,
            selector: c.selector_string(COMPONENT_GATEWAY),
            connections: prev.gateway.connections,
            draining: prev.autoscaler.as_ref().map_or(0, |a| i32::from(a.draining.is_some())),
        },
        redis: match fleet.spec.redis.mode {
            RedisMode::External => RedisObserved::External,
            RedisMode::Sentinel => RedisObserved::Sentinel {
                pods: prev.redis.pods,
                ready_pods: prev.redis.ready_pods,
                report: None,
                kept: prev.redis.kept_pods,
                durable: fleet.spec.redis.durable_publish,
            },
            RedisMode::Cluster => RedisObserved::Cluster {
                pods: prev.redis.pods,
                ready_pods: prev.redis.ready_pods,
                report: None,
                kept: prev.redis.kept_pods,
                durable: fleet.spec.redis.durable_publish,
            },
        },
        error: Some((e.reason(), e.to_string())),
    };
    let mut status = derive(fleet.status.as_ref(), &observed, Timestamp::now());
    // Nothing was observed: the pod counts stay what they were last seen as.
    status.gateway.pods = prev.gateway.pods;
    let already = fleet.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Degraded" && c.message == e.to_string()));
    if !already {
        events::publish(fleet, ctx, EventType::Warning, e.reason(), e.to_string(), "Reconcile").await;
    }
    if let Err(write) = write_status(fleet, ctx, status).await {
        tracing::warn!(error = %write, "could not write the error into the status");
    }
}
