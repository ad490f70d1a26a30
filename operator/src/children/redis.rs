//! Redis children: cluster mode (one StatefulSet of `shards × (1 + replicasPerShard)` pods,
//! bootstrapped and healed by `redis_cluster`), or sentinel mode (a primary with replicas
//! plus three Sentinels). External mode has none.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::secrets::{REDIS_PASSWORD_KEY, redis_secret_name};
use super::{COMPONENT_REDIS, COMPONENT_SENTINEL, Children, Ctx};
use socketfleet_api::crd::RedisMode;

/// The Redis and Sentinel containers' entrypoint (a file, tested on its own): it keeps the
/// password off the command line.
pub const ENTRYPOINT: &str = include_str!("redis-entrypoint.sh");
pub const ENTRYPOINT_FILE: &str = "entrypoint.sh";
/// The entrypoint's environment (its header comment says what each means).
pub const ENTRYPOINT_ENV_PRIMARY_HOST: &str = "SF_REDIS_PRIMARY_HOST";
pub const ENTRYPOINT_ENV_PRIMARY_PORT: &str = "SF_REDIS_PRIMARY_PORT";
pub const ENTRYPOINT_ENV_SENTINEL_MASTER: &str = "SF_SENTINEL_MASTER";
/// The Sentinels' `host:port`, space-separated: asked for the current primary at start.
pub const ENTRYPOINT_ENV_SENTINEL_PEERS: &str = "SF_SENTINEL_PEERS";
pub const ENTRYPOINT_ENV_ANNOUNCE_HOST: &str = "SF_ANNOUNCE_HOST";
pub const ENTRYPOINT_ENV_CONF_DIR: &str = "SF_CONF_DIR";
pub const ENTRYPOINT_ENV_RUN_DIR: &str = "SF_RUN_DIR";
/// Where the entrypoint writes the runtime config (a memory-backed emptyDir).
const RUN_DIR: &str = "/run/socketfleet";

pub const REDIS_PORT: i32 = 6379;
pub const BUS_PORT: i32 = 16379;
pub const SENTINEL_PORT: i32 = 26379;
/// The master name Sentinels monitor.
pub const SENTINEL_MASTER: &str = "socketfleet";
/// The uid of the `redis` user in the official image.
const REDIS_UID: i64 = 999;
pub const SENTINELS: usize = 3;
/// Sentinels that must agree a primary is down before one fails it over.
pub const SENTINEL_QUORUM: usize = 2;
/// The Sentinels' settings for the master, with their values (the operator restores them
/// on a Sentinel that lost the master).
pub const SENTINEL_SETTINGS: [(&str, &str); 3] =
    [("down-after-milliseconds", "5000"), ("failover-timeout", "30000"), ("parallel-syncs", "1")];

pub fn headless_name(ctx: &Ctx) -> String {
    ctx.child("redis-headless")
}

pub fn sentinel_headless_name(ctx: &Ctx) -> String {
    ctx.child("sentinel-headless")
}

/// Pods of the Redis StatefulSet.
pub fn redis_pods(ctx: &Ctx) -> i32 {
    // A scale-in keeps its pods until their slots have moved, or (sentinel) until the
    // primary is on a pod that stays (status.redis.keptPods).
    spec_redis_pods(ctx).max(ctx.fleet.status.as_ref().and_then(|s| s.redis.kept_pods).unwrap_or(0))
}

/// Pods of the Redis StatefulSet as the spec asks, without those a scale-in still keeps.
pub fn spec_redis_pods(ctx: &Ctx) -> i32 {
    let r = &ctx.fleet.spec.redis;
    match r.mode {
        RedisMode::Cluster => r.shard_count() * (1 + r.replicas_per_shard),
        RedisMode::Sentinel => 1 + r.replicas_per_shard,
        RedisMode::External => 0,
    }
}

/// DNS name of Redis pod `i` (stable across restarts; its IP is not).
pub fn pod_host(ctx: &Ctx, component_set: &str, headless: &str, i: i32) -> String {
    format!("{}-{i}.{headless}.{}.svc.cluster.local", ctx.child(component_set), ctx.namespace)
}

/// redis.conf: cluster mode when asked, AOF when persistence is on, no eviction (history
/// and sessions must fail loudly, not vanish), no RDB snapshots.
pub fn redis_conf(ctx: &Ctx) -> String {
    let r = &ctx.fleet.spec.redis;
    let mut conf = vec![
        format!("port {REDIS_PORT}"),
        "bind * -::*".into(),
        "protected-mode no".into(),
        "dir /data".into(),
        "save \"\"".into(),
        format!("appendonly {}", if r.persistence.enabled { "yes" } else { "no" }),
        "maxmemory-policy noeviction".into(),
    ];
    if r.mode == RedisMode::Sentinel {
        conf.extend([
            // Fencing: a primary cut off from every replica (an old primary on the wrong
            // side of a partition) refuses writes instead of taking ones a failover would
            // lose. The price: with its only replica down, the primary refuses writes too.
            "min-replicas-to-write 1".into(),
            "min-replicas-max-lag 10".into(),
        ]);
    }
    if r.mode == RedisMode::Cluster {
        conf.extend([
            "cluster-enabled yes".into(),
            "cluster-config-file /data/nodes.conf".into(),
            "cluster-node-timeout 5000".into(),
            // Replicas of a fresh cluster count as stale to Redis 7.0 and would never be
            // promoted; durable publishes (WAIT) are what make promoting them safe.
            "cluster-replica-validity-factor 0".into(),
            "cluster-require-full-coverage no".into(),
        ]);
    }
    conf.join("\n") + "\n"
}

fn sentinel_conf(ctx: &Ctx) -> String {
    let primary = pod_host(ctx, "redis", &headless_name(ctx), 0);
    [
        format!("port {SENTINEL_PORT}"),
        "sentinel resolve-hostnames yes".into(),
        "sentinel announce-hostnames yes".into(),
        format!("sentinel monitor {SENTINEL_MASTER} {primary} {REDIS_PORT} {SENTINEL_QUORUM}"),
    ]
    .into_iter()
    .chain(SENTINEL_SETTINGS.iter().map(|(key, value)| format!("sentinel {key} {SENTINEL_MASTER} {value}")))
    // The password and the announced name are appended at start (entrypoint.sh).
    .collect::<Vec<_>>()
    .join("\n")
        + "\n"
}

pub fn build(ctx: &Ctx, c: &mut Children) {
    let mode = ctx.fleet.spec.redis.mode;
    let mut data = BTreeMap::from([("redis.conf".to_string(), redis_conf(ctx)), (ENTRYPOINT_FILE.to_string(), ENTRYPOINT.to_string())]);
    if mode == RedisMode::Sentinel {
        data.insert("sentinel.conf".into(), sentinel_conf(ctx));
    }
    c.config_maps.push(ConfigMap { metadata: ctx.meta(ctx.child("redis"), COMPONENT_REDIS), data: Some(data), ..ConfigMap::default() });
    let mut ports = vec![port("redis", REDIS_PORT)];
    if mode == RedisMode::Cluster {
        ports.push(port("bus", BUS_PORT));
    }
    c.services.push(service(ctx, headless_name(ctx), COMPONENT_REDIS, ports, true));
    c.services.push(service(ctx, ctx.child("redis"), COMPONENT_REDIS, vec![port("redis", REDIS_PORT)], false));
    c.stateful_sets.push(redis_set(ctx));
    c.pdbs.push(pdb(ctx, ctx.child("redis"), COMPONENT_REDIS));
    if mode == RedisMode::Sentinel {
        c.services.push(service(ctx, sentinel_headless_name(ctx), COMPONENT_SENTINEL, vec![port("sentinel", SENTINEL_PORT)], true));
        c.services.push(service(ctx, ctx.child("sentinel"), COMPONENT_SENTINEL, vec![port("sentinel", SENTINEL_PORT)], false));
        c.stateful_sets.push(sentinel_set(ctx));
        c.pdbs.push(pdb(ctx, ctx.child("sentinel"), COMPONENT_SENTINEL));
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), port, target_port: Some(IntOrString::Int(port)), ..ServicePort::default() }
}

fn service(ctx: &Ctx, name: String, component: &str, ports: Vec<ServicePort>, headless: bool) -> Service {
    Service {
        metadata: ctx.meta(name, component),
        spec: Some(ServiceSpec {
            selector: Some(ctx.selector(component)),
            ports: Some(ports),
            cluster_ip: headless.then(|| "None".into()),
            // Cluster bootstrap needs every pod's address before any is ready.
            publish_not_ready_addresses: headless.then_some(true),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn pdb(ctx: &Ctx, name: String, component: &str) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ctx.meta(name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(ctx.selector(component)), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// Non-root, read-only root filesystem, no capabilities, default seccomp.
pub fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..SecurityContext::default()
    }
}

pub fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
}

pub fn secret_env(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret, key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn tcp_probe(port: i32, initial: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), ..TCPSocketAction::default() }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..VolumeMount::default() }
}

fn config_volume(ctx: &Ctx) -> Volume {
    Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource { name: ctx.child("redis"), ..ConfigMapVolumeSource::default() }),
        ..Volume::default()
    }
}

/// `sh /etc/redis/entrypoint.sh <role>`.
fn entrypoint(role: &str) -> Vec<String> {
    vec!["sh".into(), format!("/etc/redis/{ENTRYPOINT_FILE}"), role.into()]
}

/// A memory-backed emptyDir: what is written there never reaches a disk.
fn memory_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: Some(Quantity("1Mi".into())) }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(REDIS_UID),
        run_as_group: Some(REDIS_UID),
        fs_group: Some(REDIS_UID),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..PodSecurityContext::default()
    }
}

fn stateful_set(
    ctx: &Ctx,
    name: String,
    component: &str,
    replicas: i32,
    service: String,
    pod: PodSpec,
    claims: Vec<PersistentVolumeClaim>,
) -> StatefulSet {
    StatefulSet {
        metadata: ctx.meta(name, component),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(service),
            // All pods at once: the operator bootstraps the cluster when they all answer.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector { match_labels: Some(ctx.selector(component)), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(ctx.labels(component)), ..ObjectMeta::default() }),
                spec: Some(pod),
            },
            persistent_volume_claim_retention_policy: (!claims.is_empty()).then(|| claim_retention(ctx)),
            volume_claim_templates: (!claims.is_empty()).then_some(claims),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Claims follow `persistence.retainOnDelete` when the fleet goes; a scale-in deletes the
/// claims of the pods it removes (their slots were moved away before the set shrank, and a
/// claim kept would hand a later pod of that ordinal a stale node identity).
fn claim_retention(ctx: &Ctx) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let on_delete = if ctx.fleet.spec.redis.persistence.retain_on_delete { "Retain" } else { "Delete" };
    StatefulSetPersistentVolumeClaimRetentionPolicy { when_deleted: Some(on_delete.into()), when_scaled: Some("Delete".into()) }
}

fn redis_set(ctx: &Ctx) -> StatefulSet {
    let r = &ctx.fleet.spec.redis;
    let mut env = vec![secret_env("REDIS_PASSWORD", redis_secret_name(ctx), REDIS_PASSWORD_KEY), field_env("POD_IP", "status.podIP")];
    if r.mode == RedisMode::Sentinel {
        env.push(self::env(ENTRYPOINT_ENV_PRIMARY_HOST, pod_host(ctx, "redis", &headless_name(ctx), 0)));
        env.push(self::env(ENTRYPOINT_ENV_SENTINEL_PEERS, sentinel_peers(ctx)));
        env.push(self::env(ENTRYPOINT_ENV_SENTINEL_MASTER, SENTINEL_MASTER));
    }
    let mut ports = vec![ContainerPort { name: Some("redis".into()), container_port: REDIS_PORT, ..ContainerPort::default() }];
    if r.mode == RedisMode::Cluster {
        ports.push(ContainerPort { name: Some("bus".into()), container_port: BUS_PORT, ..ContainerPort::default() });
    }
    let container = Container {
        name: "redis".into(),
        image: Some(r.image.clone()),
        command: Some(entrypoint("redis")),
        env: Some(env),
        ports: Some(ports),
        readiness_probe: Some(tcp_probe(REDIS_PORT, 2)),
        liveness_probe: Some(tcp_probe(REDIS_PORT, 15)),
        resources: Some(r.resources.clone().unwrap_or_else(|| ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "256Mi")])),
            ..ResourceRequirements::default()
        })),
        security_context: Some(locked_down()),
        volume_mounts: Some(vec![mount("data", "/data"), mount("config", "/etc/redis"), mount("run", RUN_DIR)]),
        // A cluster primary hands over to its replica before it stops (entrypoint.sh).
        lifecycle: (r.mode == RedisMode::Cluster).then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction { command: Some(entrypoint("prestop")) }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..Container::default()
    };
    let mut volumes = vec![config_volume(ctx), memory_dir("run")];
    let mut claims = Vec::new();
    if r.persistence.enabled {
        claims.push(PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some("data".into()), labels: Some(ctx.selector(COMPONENT_REDIS)), ..ObjectMeta::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: r.persistence.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(quantities(&[("storage", &r.persistence.size)])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        });
    } else {
        volumes.push(empty_dir("data"));
    }
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        security_context: Some(pod_security()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    stateful_set(ctx, ctx.child("redis"), COMPONENT_REDIS, redis_pods(ctx), headless_name(ctx), pod, claims)
}

/// The three Sentinels' `host:port`, space-separated (the entrypoint's peers).
pub fn sentinel_peers(ctx: &Ctx) -> String {
    (0..SENTINELS as i32)
        .map(|i| format!("{}:{SENTINEL_PORT}", pod_host(ctx, "sentinel", &sentinel_headless_name(ctx), i)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sentinel_set(ctx: &Ctx) -> StatefulSet {
    let container = Container {
        name: "sentinel".into(),
        image: Some(ctx.fleet.spec.redis.image.clone()),
        command: Some(entrypoint("sentinel")),
        env: Some(vec![
            secret_env("REDIS_PASSWORD", redis_secret_name(ctx), REDIS_PASSWORD_KEY),
            env(ENTRYPOINT_ENV_SENTINEL_MASTER, SENTINEL_MASTER),
            env(ENTRYPOINT_ENV_SENTINEL_PEERS, sentinel_peers(ctx)),
        ]),
        ports: Some(vec![ContainerPort { name: Some("sentinel".into()), container_port: SENTINEL_PORT, ..ContainerPort::default() }]),
        readiness_probe: Some(tcp_probe(SENTINEL_PORT, 2)),
        liveness_probe: Some(tcp_probe(SENTINEL_PORT, 15)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "64Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(locked_down()),
        volume_mounts: Some(vec![mount("config", "/etc/redis"), mount("run", RUN_DIR)]),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![config_volume(ctx), memory_dir("run")]),
        security_context: Some(pod_security()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    stateful_set(ctx, ctx.child("sentinel"), COMPONENT_SENTINEL, SENTINELS as i32, sentinel_headless_name(ctx), pod, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fleet, generated};
    use super::super::{Children, build as build_all};
    use kube::ResourceExt;
    use serde_json::json;

    fn children(spec: serde_json::Value) -> Children {
        build_all(&fleet(spec), &generated())
    }

    #[test]
    fn cluster_mode_has_one_pod_per_shard_member_and_a_cluster_config() {
        let c = children(json!({"redis": {"shards": 4, "replicasPerShard": 2}}));
        let sts = &c.stateful_sets[0];
        assert_eq!(sts.name_any(), "chat-redis");
        let spec = sts.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(12));
        assert_eq!(spec.service_name.as_deref(), Some("chat-redis-headless"));
        assert!(spec.volume_claim_templates.is_none(), "no persistence: emptyDir");
        let conf = &c.config_maps[0].data.as_ref().expect("data")["redis.conf"];
        assert!(conf.contains("cluster-enabled yes") && conf.contains("appendonly no") && conf.contains("maxmemory-policy noeviction"));
        let container = &spec.template.spec.as_ref().expect("pod").containers[0];
        let command = container.command.as_ref().expect("command").join(" ");
        assert_eq!(command, "sh /etc/redis/entrypoint.sh redis");
        assert!(container.args.is_none(), "no secret on the command line");
        let pre_stop = container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).and_then(|h| h.exec.as_ref());
        assert_eq!(pre_stop.and_then(|e| e.command.as_ref()).map(|c| c.join(" ")).as_deref(), Some("sh /etc/redis/entrypoint.sh prestop"));
        assert!(c.config_maps[0].data.as_ref().expect("data")["entrypoint.sh"].contains("requirepass"));
        let mounts: Vec<&str> = container.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert!(mounts.contains(&"/run/socketfleet"), "{mounts:?}");
        let sc = container.security_context.as_ref().expect("securityContext");
        assert_eq!(
            (sc.read_only_root_filesystem, sc.run_as_non_root, sc.allow_privilege_escalation),
            (Some(true), Some(true), Some(false))
        );
        let headless = c.services.iter().find(|s| s.name_any() == "chat-redis-headless").expect("headless");
        let hs = headless.spec.as_ref().expect("spec");
        assert_eq!((hs.cluster_ip.as_deref(), hs.publish_not_ready_addresses), (Some("None"), Some(true)));
        assert!(c.pdbs.iter().any(|p| p.name_any() == "chat-redis"));
    }

    #[test]
    fn persistence_adds_claims_and_aof() {
        let c = children(json!({"redis": {"persistence": {"enabled": true, "size": "5Gi", "storageClassName": "fast"}}}));
        let claims = c.stateful_sets[0].spec.as_ref().and_then(|s| s.volume_claim_templates.clone()).expect("claims");
        let claim = claims[0].spec.as_ref().expect("claim spec");
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(claim.resources.as_ref().and_then(|r| r.requests.as_ref()).map(|r| r["storage"].0.clone()), Some("5Gi".into()));
        assert!(c.config_maps[0].data.as_ref().expect("data")["redis.conf"].contains("appendonly yes"));
        let retention = |c: &Children| c.stateful_sets[0].spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.clone());
        let kept = retention(&c).expect("a policy with claims");
        assert_eq!((kept.when_deleted.as_deref(), kept.when_scaled.as_deref()), (Some("Retain"), Some("Delete")));
        let c = children(json!({"redis": {"persistence": {"enabled": true, "retainOnDelete": false}}}));
        assert_eq!(retention(&c).and_then(|p| p.when_deleted), Some("Delete".into()));
        assert!(retention(&children(json!({}))).is_none(), "no claims, no policy");
    }

    #[test]
    fn sentinel_mode_has_a_primary_with_replicas_and_three_sentinels() {
        let c = children(json!({"redis": {"mode": "sentinel", "replicasPerShard": 2}}));
        let names: Vec<String> = c.stateful_sets.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["chat-redis", "chat-sentinel"]);
        let replicas: Vec<Option<i32>> = c.stateful_sets.iter().map(|s| s.spec.as_ref().and_then(|s| s.replicas)).collect();
        assert_eq!(replicas, [Some(3), Some(3)]);
        let conf = &c.config_maps[0].data.as_ref().expect("data");
        assert!(!conf["redis.conf"].contains("cluster-enabled"));
        assert!(
            conf["sentinel.conf"].contains("sentinel monitor socketfleet chat-redis-0.chat-redis-headless.demo.svc.cluster.local 6379 2")
        );
        assert!(c.services.iter().any(|s| s.name_any() == "chat-sentinel"));
    }

    #[test]
    fn external_mode_builds_no_redis() {
        let c = children(json!({"redis": {"mode": "external", "external": {"addresses": ["r:6379"]}}}));
        assert!(c.stateful_sets.is_empty() && c.config_maps.is_empty());
        assert!(c.services.iter().all(|s| !s.name_any().contains("redis")));
    }
}
