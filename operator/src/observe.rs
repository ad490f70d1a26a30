//! The observe step of reconcile: what the fleet's children report, read after apply.
//!
//! The gateway: the Deployment's replica counts and every pod's live state from the
//! sidecar's admin `/status` (JSON, `socketfleet_api::admin`), read from all pods at once,
//! each within a timeout; a pod that does not answer counts as unknown, not as zero. Redis:
//! the StatefulSet's ready pods, and one pass over the Redis protocol: bootstrap-and-heal in
//! cluster mode (`redis_cluster`), supervision of the Sentinels in sentinel mode
//! (`redis_sentinel`).

use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use socketfleet_api::admin::{PATH_STATUS, SidecarStatus};
use socketfleet_api::crd::{RedisMode, SIDECAR_ADMIN_PORT};

use crate::children::gateway::{deployment_name, desired_replicas};
use crate::children::redis::{REDIS_PORT, SENTINEL_MASTER, SENTINEL_PORT, headless_name, pod_host, redis_pods, spec_redis_pods};
use crate::children::{COMPONENT_GATEWAY, COMPONENT_REDIS, COMPONENT_SENTINEL, Ctx};
use crate::error::Result;
use crate::redis_cluster::{self, Access, Layout, Member};
use crate::redis_sentinel::{self, RedisPod};
use crate::status::{GatewayObserved, RedisObserved};

const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one pod's `/status` may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// A pod's sidecar admin address (`[ip]:port` for IPv6).
pub fn admin_addr(ip: &str) -> String {
    if ip.contains(':') { format!("[{ip}]:{SIDECAR_ADMIN_PORT}") } else { format!("{ip}:{SIDECAR_ADMIN_PORT}") }
}

/// One gateway pod's state, when its sidecar answered.
pub async fn sidecar_status(ip: &str) -> Option<SidecarStatus> {
    socketfleet_plumbing::http_client::get_json(&admin_addr(ip), PATH_STATUS, SCRAPE_TIMEOUT).await.ok()
}

/// One gateway pod: what Kubernetes says and what its sidecar answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPod {
    pub name: String,
    pub ip: Option<String>,
    /// The pod's Ready condition.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// None: no address yet, or the sidecar did not answer in time.
    pub sidecar: Option<SidecarStatus>,
}

/// Every gateway pod, each sidecar's `/status` read at once.
pub async fn gateway_pods(client: &Client, c: &Ctx<'_>) -> Result<Vec<GatewayPod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
    let listed = pods.list(&ListParams::default().labels(&c.selector_string(COMPONENT_GATEWAY))).await?;
    let mut out: Vec<GatewayPod> = listed
        .into_iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            GatewayPod {
                name: p.name_any(),
                ip: status.pod_ip,
                ready: status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True"),
                terminating: p.metadata.deletion_timestamp.is_some(),
                sidecar: None,
            }
        })
        .collect();
    let reports = join_all(out.iter().map(|p| async move {
        match &p.ip {
            Some(ip) => sidecar_status(ip).await,
            None => None,
        }
    }))
    .await;
    for (p, r) in out.iter_mut().zip(reports) {
        p.sidecar = r;
    }
    Ok(out)
}

/// The Deployment's counts and the connections `pods` reported.
pub async fn gateway(client: &Client, c: &Ctx<'_>, pods: &[GatewayPod]) -> Result<GatewayObserved> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &c.namespace);
    let status = api.get_opt(&deployment_name(c)).await?.and_then(|d| d.status).unwrap_or_default();
    let connections = pods.iter().filter_map(|p| p.sidecar.as_ref()).map(|s| s.connections as i64).sum();
    Ok(GatewayObserved {
        desired: desired_replicas(c),
        existing: status.replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        selector: c.selector_string(COMPONENT_GATEWAY),
        connections,
        draining: 0,
    })
}

pub async fn redis(client: &Client, c: &Ctx<'_>, password: &str) -> Result<RedisObserved> {
    let mode = c.fleet.spec.redis.mode;
    if mode == RedisMode::External {
        return Ok(RedisObserved::External);
    }
    let pods_wanted = redis_pods(c);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &c.namespace);
    let set = sts.get_opt(&c.child("redis")).await?;
    let ready_pods = set.as_ref().and_then(|s| s.status.as_ref()).and_then(|s| s.ready_replicas).unwrap_or(0);
    let current = set.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0);
    let r = &c.fleet.spec.redis;
    let spec_pods = spec_redis_pods(c);
    let access = Access { password: Some(password.to_string()), timeout: REDIS_TIMEOUT };
    let members = members_of(client, c, COMPONENT_REDIS, "redis", REDIS_PORT).await?;
    if mode == RedisMode::Sentinel {
        let sentinels = members_of(client, c, COMPONENT_SENTINEL, "sentinel", SENTINEL_PORT).await?;
        let redis: Vec<RedisPod> = members
            .into_iter()
            .map(|m| RedisPod { host: pod_host(c, "redis", &headless_name(c), m.ordinal as i32), port: REDIS_PORT as u16, member: m })
            .collect();
        let report = if sentinels.is_empty() {
            None
        } else {
            Some(redis_sentinel::supervise(&sentinels, &redis, spec_pods as usize, SENTINEL_MASTER, &access).await)
        };
        let busy = report.as_ref().is_none_or(|r| r.leaving_primary);
        let kept = (current > spec_pods && busy).then_some(current);
        return Ok(RedisObserved::Sentinel {
            pods: pods_wanted.max(kept.unwrap_or(0)),
            ready_pods,
            report,
            kept,
            durable: r.durable_publish,
        });
    }
    // Bootstrap needs every pod; healing works with the ones that answer.
    let layout = Layout { shards: r.shard_count() as usize, replicas_per_shard: r.replicas_per_shard as usize };
    let report = if members.is_empty() { None } else { Some(redis_cluster::heal(layout, &members, &access).await?) };
    let kept = kept_pods(spec_pods, current, report.as_ref());
    Ok(RedisObserved::Cluster { pods: pods_wanted.max(kept.unwrap_or(0)), ready_pods, report, kept, durable: r.durable_publish })
}

/// The pods of one of the fleet's StatefulSets (`<fleet>-<set>-<ordinal>`) that have an
/// address, as `ip:port`.
async fn members_of(client: &Client, c: &Ctx<'_>, component: &str, set: &str, port: i32) -> Result<Vec<Member>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
    let prefix = format!("{}-", c.child(set));
    let mut members = Vec::new();
    for pod in pods.list(&ListParams::default().labels(&c.selector_string(component))).await? {
        let name = pod.name_any();
        let ordinal = name.strip_prefix(&prefix).and_then(|o| o.parse::<usize>().ok());
        let ip = pod.status.and_then(|s| s.pod_ip);
        if let (Some(ordinal), Some(ip)) = (ordinal, ip) {
            let addr = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
            members.push(Member { name, addr, ordinal });
        }
    }
    Ok(members)
}

/// The StatefulSet shrinks below `current` pods only once a pass has seen that the pods
/// going away hold no slots: a scale-in keeps them while their slots move, and a pass
/// that could not tell (no pod answered) keeps them too.
pub fn kept_pods(spec_pods: i32, current: i32, report: Option<&redis_cluster::Report>) -> Option<i32> {
    let free = report.is_some_and(|r| r.leaving_busy == 0 && r.cluster_state != "pending");
    (current > spec_pods && !free).then_some(current)
}
