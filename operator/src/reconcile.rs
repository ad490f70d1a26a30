//! The controller: for each `SocketFleet`, validate → build → apply → observe → status.
//!
//! `reconcile` and `error_policy` are free functions over a shared [`Context`]. Errors are
//! written into the status (Degraded, with the error's fixed reason) and announced with a
//! Warning Event when they first appear; topology changes made by the Redis admin pass
//! become Events too.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use crate::apply::{FIELD_MANAGER, apply_all, generated};
use crate::build::gateway::{deployment_name, desired_replicas};
use crate::build::redis::{REDIS_PORT, redis_pods};
use crate::build::{COMPONENT_GATEWAY, COMPONENT_REDIS, Ctx, LABEL_MANAGED_BY, MANAGER, build};
use crate::crd::{RedisMode, SIDECAR_ADMIN_PORT, SocketFleet, SocketFleetStatus};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, ReasonLabel};
use crate::redis_cluster::{self, Access, Layout, Member, Report};
use crate::status::{GatewayObserved, Observed, RedisObserved, derive};
use crate::validate::validate;

/// How soon a fleet that is still coming up is looked at again.
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(5);
/// How often a settled fleet is checked (reads only, unless something changed).
const REQUEUE_SETTLED: Duration = Duration::from_secs(60);
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
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
    let ctx = Arc::new(Context { client: client.clone(), metrics, reporter });
    Controller::new(fleets, watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), ours.clone())
        .owns(Api::<StatefulSet>::all(client), ours)
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
    match result {
        Ok(action) => Ok(action),
        Err(e) => {
            ctx.metrics.reconcile_errors.get_or_create(&ReasonLabel { reason: e.reason() }).inc();
            report_error(&fleet, &ctx, &e).await;
            Err(e)
        }
    }
}

pub fn error_policy(_fleet: Arc<SocketFleet>, err: &Error, _ctx: Arc<Context>) -> Action {
    if err.retryable() { Action::requeue(REQUEUE_PROGRESSING) } else { Action::await_change() }
}

async fn reconcile_inner(fleet: &SocketFleet, ctx: &Context) -> Result<Action> {
    let namespace = fleet.namespace().ok_or(Error::NoNamespace)?;
    validate(fleet)?;
    let c = Ctx::new(fleet);
    check_referenced_secrets(fleet, &ctx.client, &namespace).await?;
    let generated = generated(&ctx.client, &c).await?;
    let writes = apply_all(&ctx.client, &c, build(fleet, &generated), &ctx.metrics).await?;
    if writes > 0 {
        tracing::info!(writes, "applied children");
    }
    let gateway = observe_gateway(&ctx.client, &c).await?;
    let redis = observe_redis(&ctx.client, &c, &generated.redis_password).await?;
    let report = match &redis {
        RedisObserved::Cluster { report, .. } => report.as_ref(),
        _ => None,
    };
    if let Some(r) = report {
        publish_actions(fleet, ctx, r).await;
    }
    let converged = report.is_none_or(|r| r.converged);
    let observed = Observed { generation: fleet.metadata.generation, gateway, redis, error: None };
    let status = derive(fleet.status.as_ref(), &observed, Timestamp::now());
    let settled = converged && status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    write_status(fleet, ctx, status).await?;
    Ok(Action::requeue(if settled { REQUEUE_SETTLED } else { REQUEUE_PROGRESSING }))
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

async fn observe_gateway(client: &Client, c: &Ctx<'_>) -> Result<GatewayObserved> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &c.namespace);
    let status = api.get_opt(&deployment_name(c)).await?.and_then(|d| d.status).unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
    let selector = c.selector_string(COMPONENT_GATEWAY);
    let mut connections = 0;
    for pod in pods.list(&ListParams::default().labels(&selector)).await? {
        if let Some(ip) = pod.status.and_then(|s| s.pod_ip) {
            connections += scrape_connections(&ip).await.unwrap_or(0);
        }
    }
    Ok(GatewayObserved {
        desired: desired_replicas(c),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        selector,
        connections,
    })
}

/// Reads `socketfleet_sidecar_connections` from a gateway pod's admin port.
async fn scrape_connections(ip: &str) -> Option<i64> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect((ip, SIDECAR_ADMIN_PORT as u16)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: sidecar\r\n\r\n").await.ok()?;
        let mut body = String::new();
        s.take(1 << 20).read_to_string(&mut body).await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix("socketfleet_sidecar_connections "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as i64)
    };
    tokio::time::timeout(Duration::from_secs(1), fetch).await.ok().flatten()
}

async fn observe_redis(client: &Client, c: &Ctx<'_>, password: &str) -> Result<RedisObserved> {
    let mode = c.fleet.spec.redis.mode;
    if mode == RedisMode::External {
        return Ok(RedisObserved::External);
    }
    let pods_wanted = redis_pods(c);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &c.namespace);
    let ready_pods = sts.get_opt(&c.child("redis")).await?.and_then(|s| s.status).and_then(|s| s.ready_replicas).unwrap_or(0);
    if mode == RedisMode::Sentinel {
        return Ok(RedisObserved::Sentinel { pods: pods_wanted, ready_pods });
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
    let set = c.child("redis");
    let mut members = Vec::new();
    for pod in pods.list(&ListParams::default().labels(&c.selector_string(COMPONENT_REDIS))).await? {
        let name = pod.name_any();
        let ordinal = name.strip_prefix(&format!("{set}-")).and_then(|o| o.parse::<usize>().ok());
        let ip = pod.status.and_then(|s| s.pod_ip);
        if let (Some(ordinal), Some(ip)) = (ordinal, ip) {
            members.push(Member { name, addr: format!("{ip}:{REDIS_PORT}"), ordinal });
        }
    }
    // Bootstrap needs every pod; healing works with the ones that answer.
    let layout =
        Layout { shards: c.fleet.spec.redis.shard_count() as usize, replicas_per_shard: c.fleet.spec.redis.replicas_per_shard as usize };
    if members.is_empty() {
        return Ok(RedisObserved::Cluster { pods: pods_wanted, ready_pods, report: None });
    }
    let access = Access { password: Some(password.to_string()), timeout: REDIS_TIMEOUT };
    let report = redis_cluster::heal(layout, &members, &access).await?;
    Ok(RedisObserved::Cluster { pods: pods_wanted, ready_pods, report: Some(report) })
}

fn recorder(ctx: &Context) -> Recorder {
    Recorder::new(ctx.client.clone(), ctx.reporter.clone())
}

async fn publish(fleet: &SocketFleet, ctx: &Context, type_: EventType, reason: &str, note: String, action: &str) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    ctx.metrics.write("Event", "create");
    if let Err(e) = recorder(ctx).publish(&event, &fleet.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

async fn publish_actions(fleet: &SocketFleet, ctx: &Context, report: &Report) {
    for a in &report.actions {
        ctx.metrics.redis_actions.get_or_create(&ReasonLabel { reason: a.reason() }).inc();
        let type_ = if a.is_warning() { EventType::Warning } else { EventType::Normal };
        publish(fleet, ctx, type_, a.reason(), a.to_string(), "HealRedis").await;
    }
}

/// Writes the status only when it changed: a settled fleet costs no writes.
async fn write_status(fleet: &SocketFleet, ctx: &Context, status: SocketFleetStatus) -> Result<()> {
    if fleet.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<SocketFleet> = Api::namespaced(ctx.client.clone(), &fleet.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": SocketFleet::api_version(&()), "kind": SocketFleet::kind(&()), "status": status});
    api.patch_status(&fleet.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    ctx.metrics.write("SocketFleet", "patch-status");
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
            ready: prev.gateway.ready_replicas,
            updated: prev.gateway.ready_replicas,
            selector: c.selector_string(COMPONENT_GATEWAY),
            connections: prev.gateway.connections,
        },
        redis: match fleet.spec.redis.mode {
            RedisMode::External => RedisObserved::External,
            RedisMode::Sentinel => RedisObserved::Sentinel { pods: prev.redis.pods, ready_pods: prev.redis.ready_pods },
            RedisMode::Cluster => RedisObserved::Cluster { pods: prev.redis.pods, ready_pods: prev.redis.ready_pods, report: None },
        },
        error: Some((e.reason(), e.to_string())),
    };
    let status = derive(fleet.status.as_ref(), &observed, Timestamp::now());
    let already = fleet.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Degraded" && c.message == e.to_string()));
    if !already {
        publish(fleet, ctx, EventType::Warning, e.reason(), e.to_string(), "Reconcile").await;
    }
    if let Err(write) = write_status(fleet, ctx, status).await {
        tracing::warn!(error = %write, "could not write the error into the status");
    }
}
