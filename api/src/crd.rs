//! The `SocketFleet` custom resource (`socketfleet.io/v1alpha1`), defined once here.
//!
//! `///` docs become `kubectl explain` text. Validation happens at the API server:
//! OpenAPI bounds on single fields and CEL rules (`x-kubernetes-validations`) for rules
//! across fields and for immutable fields, each with a message a person understands. The
//! operator evaluates the very same rules before it builds anything (`validate.rs`), so an
//! object that slipped past an older CRD is still refused with the same words.
//!
//! `crds/socketfleet.yaml` and the chart's CRD template are generated from this file by
//! `crdgen` (`make crds`); a test fails when they drift.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{DrainSpread, DrainTimeout, HistoryTtl, ResumeWindow, ScaleDownStabilization, format_millis};
use crate::settings;

/// Longest fleet name: the longest child name, `<name>-sentinel-headless` (a Service, at most
/// 63 characters), and the StatefulSet `<name>-sentinel`, whose pods carry a
/// `controller-revision-hash` label of its name plus 11 characters (at most 63), both fit.
pub const MAX_NAME_LEN: usize = 43;

/// Container image references: `[registry[:port]/]path[:tag][@sha256:digest]`, no spaces.
pub const IMAGE_PATTERN: &str = r"^([A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$";

/// `host:port` with a port from 1 to 65535; IPv6 hosts in brackets. No scheme, no path.
pub const HOST_PORT_PATTERN: &str = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";

/// The CRD as the API server gets it: generated from the types below, with descriptions
/// made prose (a doc comment's line breaks are not paragraph breaks).
pub fn definition() -> CustomResourceDefinition {
    let mut crd = SocketFleet::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut value = serde_json::to_value(&*schema).unwrap_or_default();
            reflow_descriptions(&mut value);
            if let Ok(reflowed) = serde_json::from_value(value) {
                *schema = reflowed;
            }
        }
    }
    crd
}

/// Joins the lines of every `description`, keeping blank-line paragraph breaks.
fn reflow_descriptions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "description"
                    && let serde_json::Value::String(text) = child
                {
                    *text = text.split("\n\n").map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n\n");
                } else {
                    reflow_descriptions(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(reflow_descriptions),
        _ => {}
    }
}

/// A horizontally scaled WebSocket fleet: gateway pods running the SocketFleet sidecar (and
/// optionally your app), the Redis they share, and how clients move between pods.
// Several `printcolumn(type_ = ...)` attributes read as duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "socketfleet.io",
    version = "v1alpha1",
    kind = "SocketFleet",
    plural = "socketfleets",
    shortname = "sfleet",
    namespaced,
    validation = Rule::new(name_rule()).message(name_message().as_str()),
    status = "SocketFleetStatus",
    doc = "A horizontally scaled WebSocket fleet: gateway pods with the SocketFleet sidecar, their Redis, and lossless drains.",
    scale(
        spec_replicas_path = ".spec.gateway.replicas.count",
        status_replicas_path = ".status.gateway.replicas",
        label_selector_path = ".status.gateway.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Pods", type_ = "string", json_path = ".status.gateway.pods"),
    printcolumn(name = "Connections", type_ = "integer", json_path = ".status.gateway.connections"),
    printcolumn(name = "Redis", type_ = "string", json_path = ".status.redis.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!(has(self.autoscaling) && has(self.autoscaling.enabled) && self.autoscaling.enabled && (!has(self.autoscaling.mode) || self.autoscaling.mode == 'builtin') && has(self.gateway) && has(self.gateway.replicas) && has(self.gateway.replicas.count))"
    )
    .message("gateway.replicas.count (what `kubectl scale` sets) cannot be set while autoscaling.mode is builtin: the operator sets the replicas; remove count, or use autoscaling.mode: external for an HPA or KEDA, or disable autoscaling")
)]
pub struct SocketFleetSpec {
    /// The gateway pods: the sidecar that terminates WebSockets, your optional app
    /// container, how many pods, and the Service clients connect to.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Scaling the gateway on live connection counts.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// The Redis the gateway pods share for pub/sub, history and sessions.
    #[serde(default)]
    pub redis: RedisSpec,
    /// How much history each channel keeps for clients that reconnect.
    #[serde(default)]
    pub channels: ChannelsSpec,
    /// How clients authenticate (JWT).
    #[serde(default)]
    pub auth: AuthSpec,
    /// How a gateway pod that is going away moves its clients to the others.
    #[serde(default)]
    pub drain: DrainSpec,
    /// How long a disconnected client can resume its session (subscriptions, position,
    /// state) with its resume token. A duration from 10s to 24h.
    #[serde(default = "default_resume_window")]
    pub resume_window: ResumeWindow,
}

fn name_rule() -> String {
    format!("size(self.metadata.name) <= {MAX_NAME_LEN} && self.metadata.name.matches(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')")
}

fn name_message() -> String {
    format!(
        "metadata.name must be at most {MAX_NAME_LEN} characters of lower-case letters, digits and '-', starting with a letter: \
         the fleet's Services and pods are named after it (<name>-sentinel-headless is the longest)"
    )
}

fn default_resume_window() -> ResumeWindow {
    ResumeWindow::from_duration(settings::DEFAULT_RESUME_WINDOW)
}

// ---------------------------------------------------------------------------------------
// gateway

/// The gateway pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The SocketFleet sidecar, injected into every gateway pod.
    #[serde(default)]
    pub sidecar: SidecarSpec,
    /// Your own app container (webhooks, business logic), next to the sidecar. It reaches the
    /// sidecar's publish and session API at http://127.0.0.1:8081.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppContainerSpec>,
    /// How many gateway pods.
    #[serde(default)]
    pub replicas: ReplicasSpec,
    /// The Service clients connect to.
    #[serde(default)]
    pub service: GatewayServiceSpec,
    /// Scheduling overrides for the gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodOverrides>,
}

/// The sidecar container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Sidecar image (`[registry/]path[:tag][@sha256:digest]`).
    #[serde(default = "default_sidecar_image")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(image_rule()).message(IMAGE_MESSAGE))]
    pub image: String,
    /// When the kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// CPU and memory for the sidecar. Default: requests 100m CPU and 128Mi memory, limit
    /// 512Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for SidecarSpec {
    fn default() -> Self {
        SidecarSpec { image: default_sidecar_image(), image_pull_policy: PullPolicy::default(), resources: None }
    }
}

/// The sidecar image this operator release ships with.
pub const DEFAULT_SIDECAR_IMAGE: &str = "socketfleet/sidecar:0.1.0";

fn default_sidecar_image() -> String {
    DEFAULT_SIDECAR_IMAGE.into()
}

/// Image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    #[default]
    IfNotPresent,
    Always,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        }
    }
}

/// Ports the sidecar listens on inside every gateway pod (an app container must not use them).
pub const SIDECAR_WS_PORT: i32 = settings::WS_PORT as i32;
pub const SIDECAR_ADMIN_PORT: i32 = settings::ADMIN_PORT as i32;
pub const SIDECAR_APP_API_PORT: i32 = settings::APP_API_PORT as i32;

fn image_rule() -> String {
    format!("self.matches(r'{IMAGE_PATTERN}')")
}

const IMAGE_MESSAGE: &str = "must be an image reference like registry.example.com/team/app:1.4 or app@sha256:<digest>, without spaces";

/// Your app container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.port in [8080, 8081, 9090])").message("app.port must not be 8080, 8081 or 9090: the sidecar listens there"))]
pub struct AppContainerSpec {
    /// App image (`[registry/]path[:tag][@sha256:digest]`).
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(image_rule()).message(IMAGE_MESSAGE))]
    pub image: String,
    /// The port your app listens on (the sidecar's hooks call it there).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Command, replacing the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables for your app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// CPU and memory for your app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// How many gateway pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("replicas.min must not be greater than replicas.max"))]
#[x_kube(
    validation = Rule::new("!has(self.count) || (self.count >= self.min && self.count <= self.max)")
        .message("replicas.count (what `kubectl scale` sets) must be within replicas.min and replicas.max")
)]
pub struct ReplicasSpec {
    /// Fewest gateway pods.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,
    /// Most gateway pods.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    /// Desired gateway pods, set through the scale subresource (`kubectl scale`, an HPA or
    /// KEDA). Unset: `min`, or what the connection autoscaler decides when it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,
}

impl Default for ReplicasSpec {
    fn default() -> Self {
        ReplicasSpec { min: default_min_replicas(), max: default_max_replicas(), count: None }
    }
}

fn default_min_replicas() -> i32 {
    2
}

fn default_max_replicas() -> i32 {
    10
}

/// The gateway Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// The port clients connect to (WebSocket at `/ws`).
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for GatewayServiceSpec {
    fn default() -> Self {
        GatewayServiceSpec { type_: ServiceType::default(), port: default_service_port() }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Scheduling overrides for gateway pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Affinity; replaces the default preferred anti-affinity that spreads pods over nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Priority class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

// ---------------------------------------------------------------------------------------
// autoscaling

/// The connection autoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Scale the gateway on live connection counts, within gateway.replicas.min and max.
    /// Off: the replicas are gateway.replicas.count (`kubectl scale`), else min.
    #[serde(default)]
    pub enabled: bool,
    /// Who changes the replicas when enabled. `builtin`: the operator, which drains the pod it
    /// removes before it goes and moves clients onto pods it added (gateway.replicas.count
    /// must then be unset: `kubectl scale` is refused). `external`: an HPA or KEDA on the
    /// scale subresource; the operator never changes the replicas and exports the fleet's
    /// connections as Prometheus metrics for them (see examples/hpa.yaml, examples/keda.yaml).
    #[serde(default)]
    pub mode: AutoscalingMode,
    /// Connections per gateway pod the autoscaler aims for.
    #[serde(default = "default_target_connections")]
    #[schemars(range(min = 1, max = 10000000))]
    pub target_connections_per_pod: i32,
    /// Spare connections to keep room for: pods = ceil((connections + buffer) /
    /// targetConnectionsPerPod).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000000))]
    pub buffer: i32,
    /// How long load must stay low before a pod is drained away, one pod at a time (a
    /// duration up to 24h).
    #[serde(default = "default_scale_down_stabilization")]
    pub scale_down_stabilization: ScaleDownStabilization,
    /// Move connections onto pods well below the mean (new pods after a scale-up start
    /// empty): a pod more than 20% (and 2 connections) above the mean hands at most 5% of
    /// its connections per second off to the others, through the drain's lossless handoff
    /// (`reconnect` with a resume token). In either mode; only while every pod is ready and
    /// none drains.
    #[serde(default = "default_true")]
    pub rebalance: bool,
}

fn default_true() -> bool {
    true
}

impl AutoscalingSpec {
    /// Whether the operator (or local mode) itself sets the replicas.
    pub fn builtin(&self) -> bool {
        self.enabled && self.mode == AutoscalingMode::Builtin
    }
}

/// Who scales the gateway when autoscaling is enabled.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalingMode {
    #[default]
    Builtin,
    External,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        AutoscalingSpec {
            enabled: false,
            mode: AutoscalingMode::default(),
            target_connections_per_pod: default_target_connections(),
            buffer: 0,
            scale_down_stabilization: default_scale_down_stabilization(),
            rebalance: true,
        }
    }
}

fn default_target_connections() -> i32 {
    5000
}

fn default_scale_down_stabilization() -> ScaleDownStabilization {
    ScaleDownStabilization::from_duration(std::time::Duration::from_secs(300))
}

// ---------------------------------------------------------------------------------------
// redis

/// The fleet's Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.shards) || self.mode == 'cluster'").message("redis.shards applies only to mode: cluster"))]
#[x_kube(
    validation = Rule::new("self.mode != 'cluster' || !has(self.shards) || self.shards >= 3")
        .message("a Redis Cluster needs at least 3 shards (primaries) to elect failovers")
)]
#[x_kube(validation = Rule::new("self.mode != 'external' || has(self.external)").message("redis.mode: external requires redis.external.addresses"))]
#[x_kube(validation = Rule::new("self.mode == 'external' || !has(self.external)").message("redis.external is only used with redis.mode: external"))]
#[x_kube(
    validation = Rule::new("!self.durablePublish || self.mode == 'external' || self.replicasPerShard >= 1")
        .message("redis.durablePublish waits for a replica: set redis.replicasPerShard to at least 1")
)]
#[x_kube(
    validation = Rule::new("self.mode != 'sentinel' || self.replicasPerShard >= 1")
        .message("mode: sentinel needs redis.replicasPerShard of at least 1 (something to fail over to)")
)]
#[x_kube(validation = Rule::new("self.mode == oldSelf.mode").message("redis.mode cannot be changed; create a new SocketFleet"))]
#[x_kube(
    validation = Rule::new(PERSISTENCE_UNCHANGED)
        .message("redis.persistence cannot be changed (retainOnDelete aside): volume claims of a StatefulSet are immutable")
)]
pub struct RedisSpec {
    /// `cluster` (a Redis Cluster the operator creates and heals), `sentinel` (a primary,
    /// replicas and three Sentinels) or `external` (your own Redis; the operator only wires
    /// the sidecars to it). Cannot be changed.
    #[serde(default)]
    pub mode: RedisMode,
    /// Primaries of the Redis Cluster (cluster mode; at least 3; default 3). Changing it on a
    /// running fleet reshards: new primaries (with their replicas) take an even share of the
    /// slots from every old one, or the slots of the primaries being removed spread over
    /// the rest before their pods go. Progress is in status.operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 100))]
    pub shards: Option<i32>,
    /// Replicas per primary (cluster and sentinel modes).
    #[serde(default = "default_replicas_per_shard")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_shard: i32,
    /// Redis image (7.0 or newer: sharded pub/sub), `[registry/]path[:tag][@sha256:digest]`.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(image_rule()).message(IMAGE_MESSAGE))]
    pub image: String,
    /// CPU and memory for each Redis pod. Default: requests 100m CPU and 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Data on persistent volumes (AOF). Off: Redis keeps data in memory only, and a pod
    /// restart loses that pod's copy (its replica or primary still has it).
    #[serde(default)]
    pub persistence: PersistenceSpec,
    /// Acknowledge a publish only after a replica has it (`WAIT 1`), so a primary failover
    /// cannot lose acknowledged messages. Needs replicasPerShard >= 1.
    #[serde(default)]
    pub durable_publish: bool,
    /// Your Redis, for mode: external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
}

impl Default for RedisSpec {
    fn default() -> Self {
        RedisSpec {
            mode: RedisMode::default(),
            shards: None,
            replicas_per_shard: default_replicas_per_shard(),
            image: default_redis_image(),
            resources: None,
            persistence: PersistenceSpec::default(),
            durable_publish: false,
            external: None,
        }
    }
}

impl RedisSpec {
    /// Primaries in cluster mode.
    pub fn shard_count(&self) -> i32 {
        self.shards.unwrap_or(DEFAULT_SHARDS)
    }
}

pub const DEFAULT_SHARDS: i32 = 3;

fn default_replicas_per_shard() -> i32 {
    1
}

fn default_redis_image() -> String {
    "redis:7.0".into()
}

/// How the fleet gets its Redis.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Cluster,
    Sentinel,
    External,
}

/// Persistent volumes for Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// Keep Redis data (AOF) on a PersistentVolumeClaim per pod.
    #[serde(default)]
    pub enabled: bool,
    /// Size of each claim.
    #[serde(default = "default_volume_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$"))]
    pub size: String,
    /// StorageClass of the claims; unset uses the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the claims (and the data) when the SocketFleet is deleted, so a fleet created
    /// again with the same name finds its data (default). False deletes them with the
    /// fleet. Either way, the claims of pods a scale-in removes are deleted: their slots
    /// were moved away first. Can be changed at any time.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

/// Everything of `persistence` but `retainOnDelete` is fixed once the fleet exists.
const PERSISTENCE_UNCHANGED: &str = "self.persistence.enabled == oldSelf.persistence.enabled \
    && self.persistence.size == oldSelf.persistence.size \
    && has(self.persistence.storageClassName) == has(oldSelf.persistence.storageClassName) \
    && (!has(self.persistence.storageClassName) || self.persistence.storageClassName == oldSelf.persistence.storageClassName)";

impl Default for PersistenceSpec {
    fn default() -> Self {
        PersistenceSpec { enabled: false, size: default_volume_size(), storage_class_name: None, retain_on_delete: true }
    }
}

fn default_volume_size() -> String {
    "1Gi".into()
}

fn host_port_rule() -> String {
    format!("self.all(a, a.matches(r'{HOST_PORT_PATTERN}'))")
}

/// Your own Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode != 'sentinel' || has(self.sentinelMaster)")
        .message("redis.external.mode: sentinel requires redis.external.sentinelMaster")
)]
#[x_kube(
    validation = Rule::new("self.mode != 'standalone' || size(self.addresses) == 1")
        .message("redis.external.mode: standalone takes exactly one address (list several only for cluster seeds or Sentinels)")
)]
pub struct ExternalRedisSpec {
    /// `host:port` of the node, of cluster seed nodes, or of the Sentinels (no scheme, a port
    /// from 1 to 65535; IPv6 hosts in brackets).
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 261)))]
    #[x_kube(validation = Rule::new(host_port_rule()).message("every address must be host:port, like redis.example.com:6379 or [fd00::1]:6379, with a port from 1 to 65535 and no scheme"))]
    pub addresses: Vec<String>,
    /// How that Redis runs.
    #[serde(default)]
    pub mode: ExternalRedisMode,
    /// The Sentinel master name (mode: sentinel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_master: Option<String>,
    /// The Secret key holding the Redis password, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// The topology of an external Redis.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExternalRedisMode {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

impl ExternalRedisMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalRedisMode::Standalone => "standalone",
            ExternalRedisMode::Cluster => "cluster",
            ExternalRedisMode::Sentinel => "sentinel",
        }
    }
}

/// A key of a Secret in the fleet's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

// ---------------------------------------------------------------------------------------
// channels, auth, drain

/// Channel history.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsSpec {
    /// Messages kept per channel for clients that come back.
    #[serde(default = "default_history_size")]
    #[schemars(range(min = 1, max = 10000000))]
    pub history_size: i32,
    /// How long history is kept after a channel's last message (a duration from 1s to 720h).
    #[serde(default = "default_history_ttl")]
    pub history_ttl: HistoryTtl,
}

impl Default for ChannelsSpec {
    fn default() -> Self {
        ChannelsSpec { history_size: default_history_size(), history_ttl: default_history_ttl() }
    }
}

fn default_history_size() -> i32 {
    1000
}

fn default_history_ttl() -> HistoryTtl {
    HistoryTtl::from_duration(settings::DEFAULT_HISTORY_TTL)
}

/// Client authentication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'rs256' || has(self.publicKeySecretRef)").message("auth.mode: rs256 requires auth.publicKeySecretRef"))]
#[x_kube(validation = Rule::new("self.mode == 'rs256' || !has(self.publicKeySecretRef)").message("auth.publicKeySecretRef is only used with auth.mode: rs256"))]
#[x_kube(validation = Rule::new("self.mode == 'hs256' || !has(self.jwtSecretRef)").message("auth.jwtSecretRef is only used with auth.mode: hs256"))]
pub struct AuthSpec {
    /// `hs256` (a shared secret), `rs256` (your public key) or `none` (anonymous clients:
    /// only for demos).
    #[serde(default)]
    pub mode: AuthMode,
    /// For hs256: the Secret key with the shared JWT secret. Unset: the operator generates
    /// one in the Secret `<name>-jwt` (key `secret`) for your app to sign tokens with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_ref: Option<SecretKeyRef>,
    /// For rs256: the Secret key with the PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_secret_ref: Option<SecretKeyRef>,
}

/// JWT mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Hs256,
    Rs256,
    None,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Hs256 => "hs256",
            AuthMode::Rs256 => "rs256",
            AuthMode::None => "none",
        }
    }
}

/// The paced drain of a gateway pod that is going away.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(drain_rule()).message(drain_message().as_str()))]
pub struct DrainSpec {
    /// Longest a pod may take to move its clients away before it stops (a duration from 5s
    /// to 1h). The pod's termination grace period is derived from it.
    #[serde(default = "default_drain_timeout")]
    pub timeout: DrainTimeout,
    /// Clients are told to reconnect elsewhere evenly over this window, so the other pods
    /// are not stormed (a duration; 0s tells every client at once).
    #[serde(default = "default_reconnect_spread")]
    pub reconnect_spread: DrainSpread,
}

impl Default for DrainSpec {
    fn default() -> Self {
        DrainSpec { timeout: default_drain_timeout(), reconnect_spread: default_reconnect_spread() }
    }
}

/// The sidecar's own rule (`SF_DRAIN_ACCEPT_GRACE + SF_DRAIN_SPREAD < SF_DRAIN_TIMEOUT`),
/// with the accept grace a pod gets.
fn drain_rule() -> String {
    let grace = format_millis(settings::DEFAULT_DRAIN_ACCEPT_GRACE.as_millis() as u64);
    format!("duration(self.reconnectSpread) + duration('{grace}') < duration(self.timeout)")
}

fn drain_message() -> String {
    let grace = format_millis(settings::DEFAULT_DRAIN_ACCEPT_GRACE.as_millis() as u64);
    format!("drain.reconnectSpread must be more than {grace} shorter than drain.timeout ({grace} is the sidecar's accept grace)")
}

fn default_drain_timeout() -> DrainTimeout {
    DrainTimeout::from_duration(settings::DEFAULT_DRAIN_TIMEOUT)
}

fn default_reconnect_spread() -> DrainSpread {
    DrainSpread::from_duration(settings::DEFAULT_DRAIN_SPREAD)
}

// ---------------------------------------------------------------------------------------
// status

/// What the operator observed. Derived only from what it applied and read back.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SocketFleetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded, RedisReady.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The gateway Deployment.
    #[serde(default)]
    pub gateway: GatewayStatus,
    /// The Redis the fleet uses.
    #[serde(default)]
    pub redis: RedisStatus,
    /// The connection autoscaler (builtin mode): what it saw, decided and remembers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
    /// Resharding of the Redis Cluster: running and recent, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
}

/// The builtin connection autoscaler's state. Timestamps are RFC 3339.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// Connections the gateway pods reported at the last decision.
    #[serde(default)]
    pub connections: i64,
    /// Gateway pods whose sidecar did not answer (their connections are unknown, not zero;
    /// no scale-down while there are any).
    #[serde(default)]
    pub unknown_pods: i32,
    /// Pods the load asks for, within gateway.replicas.min and max.
    #[serde(default)]
    pub wanted: i32,
    /// The replicas the autoscaler set (a pod being drained included).
    #[serde(default)]
    pub replicas: i32,
    /// The last action: ScaleUp, Drain, Remove (or Hold before the first).
    #[serde(default)]
    pub last_decision: String,
    /// Why, for people.
    #[serde(default)]
    pub reason: String,
    /// When the last action was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision_time: Option<String>,
    /// When a scale-down may start if load stays low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scale_down_time: Option<String>,
    /// Since when load has been low enough for one pod fewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_since: Option<String>,
    /// The last scale-up (scale-ups are paced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_up_time: Option<String>,
    /// The pod being drained before it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining: Option<DrainingPod>,
    /// Every gateway pod: state (Ready, NotReady, Unknown, Draining, Drained) and connections.
    #[serde(default)]
    pub pods: Vec<GatewayPodStatus>,
    /// The fullest pod's connections over the mean ("1.00" is even; rebalancing aims for at
    /// most 1.20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<String>,
}

/// A pod the autoscaler is draining.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrainingPod {
    pub pod: String,
    /// When the drain started (RFC 3339).
    pub since: String,
}

/// One gateway pod as the autoscaler saw it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPodStatus {
    pub name: String,
    /// Ready, NotReady, Unknown (the sidecar did not answer), Draining or Drained.
    pub state: String,
    /// Open connections (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<i64>,
}

/// Gateway pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Desired gateway pods (the scale subresource's status).
    #[serde(default)]
    pub replicas: i32,
    /// Gateway pods ready / gateway pods that exist, as `kubectl get` shows them (`2/3`).
    #[serde(default)]
    pub pods: String,
    /// Gateway pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the gateway pods (for the scale subresource).
    #[serde(default)]
    pub selector: String,
    /// Open client connections over all gateway pods, as last reported.
    #[serde(default)]
    pub connections: i64,
}

/// Redis topology.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisStatus {
    /// One line for `kubectl get`: mode and health.
    #[serde(default)]
    pub summary: String,
    /// Primaries that own slots (cluster) or the primary (sentinel).
    #[serde(default)]
    pub primaries: i32,
    /// Replicas attached to a primary.
    #[serde(default)]
    pub replicas: i32,
    /// Hash slots owned by a reachable primary (16384 when healthy; cluster mode).
    #[serde(default)]
    pub slots_covered: i32,
    /// `cluster_state` as Redis reports it (`ok`, `fail`), or `pending` before bootstrap.
    #[serde(default)]
    pub cluster_state: String,
    /// Redis pods that are ready.
    #[serde(default)]
    pub ready_pods: i32,
    /// Redis pods the fleet asks for.
    #[serde(default)]
    pub pods: i32,
    /// Pods kept beyond what the spec asks for while a scale-in moves their slots away
    /// (the StatefulSet shrinks only once they hold none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_pods: Option<i32>,
    /// The pods that are primaries: those serving slots (cluster) or the one the Sentinels
    /// name (sentinel), as last seen whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_pods: Vec<String>,
    /// The last time a primary was replaced by another pod: a failover by Redis Cluster or
    /// the Sentinels, or a handover the operator or a stopping pod asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Failover>,
}

/// A change of primaries seen by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// When the operator saw it (RFC 3339).
    pub time: String,
    /// Pods that were primaries and are not any more.
    pub from: Vec<String>,
    /// Pods that became primaries.
    pub to: Vec<String>,
}

/// A long-running change to the fleet's Redis, newest last (the last 5 are kept).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `Reshard`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Shards before.
    pub from: i32,
    /// Shards asked for.
    pub to: i32,
    /// Running, Succeeded, or Superseded (the spec changed again before it finished).
    pub state: String,
    /// Slots moved so far.
    #[serde(default)]
    pub slots_moved: i64,
    /// Keys moved with them.
    #[serde(default)]
    pub keys_moved: i64,
    /// Slots still to move, as of the last step.
    #[serde(default)]
    pub slots_remaining: i64,
    /// When it started (RFC 3339).
    pub started: String,
    /// What the last step did, for people.
    #[serde(default)]
    pub last_step: String,
    /// When the last step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_time: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}
