//! The sidecar settings a `SocketFleet` spec decides, the same in a gateway pod and in
//! `socketfleet local`. Where Redis is, the secrets and the listen addresses differ between
//! the two, so the caller passes them in.

use crate::crd::{ExternalRedisMode, ExternalRedisSpec, SecretKeyRef, SocketFleetSpec};
use crate::settings::{Auth, DEFAULT_REDIS_SENTINEL_MASTER, RedisMode, RedisSettings, Secret, SidecarSettings};

impl From<&SecretKeyRef> for Secret {
    fn from(r: &SecretKeyRef) -> Secret {
        Secret::Ref { name: r.name.clone(), key: r.key.clone() }
    }
}

impl ExternalRedisSpec {
    /// How the sidecar follows this Redis.
    pub fn sidecar_mode(&self) -> RedisMode {
        match self.mode {
            ExternalRedisMode::Standalone => RedisMode::Standalone,
            ExternalRedisMode::Cluster => RedisMode::Cluster,
            ExternalRedisMode::Sentinel => {
                RedisMode::Sentinel { master: self.sentinel_master.clone().unwrap_or_else(|| DEFAULT_REDIS_SENTINEL_MASTER.into()) }
            }
        }
    }
}

impl SidecarSettings {
    /// Defaults, then everything the spec sets: history, drain pacing, the resume window
    /// and durable publish.
    pub fn from_spec(spec: &SocketFleetSpec, auth: Auth, redis: RedisSettings) -> SidecarSettings {
        let mut s = SidecarSettings::new(auth);
        s.redis = RedisSettings { durable_publish: spec.redis.durable_publish, ..redis };
        s.history_size = spec.channels.history_size.max(1) as u32;
        s.history_ttl = spec.channels.history_ttl.as_duration();
        s.drain_timeout = spec.drain.timeout.as_duration();
        s.drain_spread = spec.drain.reconnect_spread.as_duration();
        s.resume_window = spec.resume_window.as_duration();
        s
    }
}

impl crate::autoscale::Policy {
    /// The autoscaler's policy a spec decides (the operator's and local mode's).
    pub fn from_spec(spec: &SocketFleetSpec) -> crate::autoscale::Policy {
        crate::autoscale::Policy {
            target_per_pod: spec.autoscaling.target_connections_per_pod.max(1) as u64,
            buffer: spec.autoscaling.buffer.max(0) as u64,
            min: spec.gateway.replicas.min.max(1) as u32,
            max: spec.gateway.replicas.max.max(1) as u32,
            stabilization_ms: spec.autoscaling.scale_down_stabilization.as_duration().as_millis() as u64,
            drain_timeout_ms: spec.drain.timeout.as_duration().as_millis() as u64,
        }
    }
}
