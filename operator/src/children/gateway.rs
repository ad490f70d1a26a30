//! Gateway children: the Deployment whose pods run the sidecar (and the app container when
//! given), the Service clients connect to, and a PDB.
//!
//! The sidecar's settings are environment variables, written by
//! `socketfleet_api::settings::SidecarSettings::to_env` (the contract the sidecar parses); the
//! pod leaves gracefully: `/ready` on the admin port drops out of the Service, a preStop
//! hook starts the paced drain, and the termination grace outlasts `drain.timeout`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::redis::{
    REDIS_PORT, SENTINEL_MASTER, SENTINEL_PORT, env, field_env, locked_down, pdb, pod_host, quantities, secret_env, sentinel_headless_name,
};
use super::secrets::{
    JWT_SECRET_KEY, REDIS_PASSWORD_KEY, RESUME_KEY_KEY, generates_jwt_secret, jwt_secret_name, redis_secret_name, resume_secret_name,
};
use super::{COMPONENT_GATEWAY, Children, Ctx};
use socketfleet_api::crd::{AuthMode, RedisMode, SIDECAR_ADMIN_PORT, SIDECAR_APP_API_PORT, SIDECAR_WS_PORT};
use socketfleet_api::settings::{self, Auth, EnvValue, NodeName, RedisSettings, Secret, SidecarSettings};

/// The uid of the distroless `nonroot` user the sidecar image runs as.
const SIDECAR_UID: i64 = 65532;
/// Added to `drain.timeout` for the termination grace: the drain, then a clean exit.
const GRACE_MARGIN_SECS: i64 = 15;
const JWT_KEY_DIR: &str = "/etc/socketfleet/jwt";

pub fn deployment_name(ctx: &Ctx) -> String {
    ctx.child("gateway")
}

/// Gateway pods the fleet asks for: with the builtin autoscaler, the replicas it last set
/// (`status.autoscaler.replicas`, one above max while a pod drains); otherwise the scale
/// subresource's `count`, else `min`, within `min..=max`.
pub fn desired_replicas(ctx: &Ctx) -> i32 {
    let r = &ctx.fleet.spec.gateway.replicas;
    let max = r.max.max(r.min);
    let autoscaled = ctx.fleet.status.as_ref().and_then(|s| s.autoscaler.as_ref()).map(|a| a.replicas).filter(|n| *n > 0);
    match autoscaled {
        Some(n) if ctx.fleet.spec.autoscaling.builtin() => n.clamp(r.min, max + 1),
        _ => r.count.unwrap_or(r.min).clamp(r.min, max),
    }
}

pub fn build(ctx: &Ctx, c: &mut Children) {
    c.deployments.push(deployment(ctx));
    c.services.push(client_service(ctx));
    c.pdbs.push(pdb(ctx, ctx.child("gateway"), COMPONENT_GATEWAY));
}

/// Where the sidecar finds Redis, per mode.
fn redis_settings(ctx: &Ctx) -> RedisSettings {
    let r = &ctx.fleet.spec.redis;
    let password = || Some(Secret::Ref { name: redis_secret_name(ctx), key: REDIS_PASSWORD_KEY.into() });
    match r.mode {
        RedisMode::Cluster => RedisSettings {
            mode: settings::RedisMode::Cluster,
            addrs: vec![format!("{}.{}.svc.cluster.local:{REDIS_PORT}", ctx.child("redis"), ctx.namespace)],
            password: password(),
            ..RedisSettings::default()
        },
        RedisMode::Sentinel => RedisSettings {
            mode: settings::RedisMode::Sentinel { master: SENTINEL_MASTER.into() },
            addrs: (0..3).map(|i| format!("{}:{SENTINEL_PORT}", pod_host(ctx, "sentinel", &sentinel_headless_name(ctx), i))).collect(),
            password: password(),
            // The fleet's Sentinels ask for the same generated password.
            sentinel_password: password(),
            ..RedisSettings::default()
        },
        RedisMode::External => {
            let Some(ext) = &r.external else { return RedisSettings::default() };
            RedisSettings {
                mode: ext.sidecar_mode(),
                addrs: ext.addresses.clone(),
                password: ext.password_secret_ref.as_ref().map(Secret::from),
                ..RedisSettings::default()
            }
        }
    }
}

fn auth_settings(ctx: &Ctx) -> Auth {
    let auth = &ctx.fleet.spec.auth;
    match auth.mode {
        AuthMode::Hs256 if generates_jwt_secret(ctx) => Auth::Hs256(Secret::Ref { name: jwt_secret_name(ctx), key: JWT_SECRET_KEY.into() }),
        AuthMode::Hs256 => match &auth.jwt_secret_ref {
            Some(r) => Auth::Hs256(r.into()),
            None => Auth::None,
        },
        AuthMode::Rs256 => Auth::Rs256 {
            public_key_file: format!("{JWT_KEY_DIR}/{}", auth.public_key_secret_ref.as_ref().map(|r| r.key.as_str()).unwrap_or("key"))
                .into(),
        },
        AuthMode::None => Auth::None,
    }
}

/// Every setting of a gateway pod's sidecar: the spec's and the pod's secrets; the listen
/// addresses are the defaults (the pod's ports, the app API on loopback).
pub fn sidecar_settings(ctx: &Ctx) -> SidecarSettings {
    let mut s = SidecarSettings::from_spec(&ctx.fleet.spec, auth_settings(ctx), redis_settings(ctx));
    s.node_name = NodeName::PodName;
    s.resume_key = Some(Secret::Ref { name: resume_secret_name(ctx), key: RESUME_KEY_KEY.into() });
    s
}

/// The settings as a container's env.
fn sidecar_env(ctx: &Ctx) -> Vec<EnvVar> {
    sidecar_settings(ctx)
        .to_env()
        .into_iter()
        .map(|(name, value)| match value {
            EnvValue::Text(v) => env(name, v),
            EnvValue::SecretKey { name: secret, key } => secret_env(name, secret, &key),
            EnvValue::PodName => field_env(name, "metadata.name"),
        })
        .collect()
}

fn http_probe(path: &str, initial: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction { path: Some(path.into()), port: IntOrString::Int(SIDECAR_ADMIN_PORT), ..HTTPGetAction::default() }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(5),
        ..Probe::default()
    }
}

fn sidecar(ctx: &Ctx) -> Container {
    let s = &ctx.fleet.spec.gateway.sidecar;
    let mut mounts = Vec::new();
    if ctx.fleet.spec.auth.mode == AuthMode::Rs256 {
        mounts.push(VolumeMount {
            name: "jwt-key".into(),
            mount_path: JWT_KEY_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    Container {
        name: "sidecar".into(),
        image: Some(s.image.clone()),
        image_pull_policy: Some(s.image_pull_policy.as_str().into()),
        env: Some(sidecar_env(ctx)),
        ports: Some(vec![
            ContainerPort { name: Some("ws".into()), container_port: SIDECAR_WS_PORT, ..ContainerPort::default() },
            ContainerPort { name: Some("admin".into()), container_port: SIDECAR_ADMIN_PORT, ..ContainerPort::default() },
        ]),
        liveness_probe: Some(http_probe("/live", 5)),
        readiness_probe: Some(http_probe("/ready", 1)),
        // Starts the paced drain and waits for it, so clients move before SIGTERM.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                http_get: Some(HTTPGetAction {
                    path: Some("/drain/prestop".into()),
                    port: IntOrString::Int(SIDECAR_ADMIN_PORT),
                    ..HTTPGetAction::default()
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(s.resources.clone().unwrap_or_else(|| ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "512Mi")])),
            ..ResourceRequirements::default()
        })),
        security_context: Some(locked_down()),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    }
}

fn app(ctx: &Ctx) -> Option<Container> {
    let a = ctx.fleet.spec.gateway.app.as_ref()?;
    let mut env_vars = vec![env("SOCKETFLEET_API_URL", format!("http://127.0.0.1:{SIDECAR_APP_API_PORT}"))];
    env_vars.extend(a.env.iter().cloned());
    Some(Container {
        name: "app".into(),
        image: Some(a.image.clone()),
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        args: (!a.args.is_empty()).then(|| a.args.clone()),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort { name: Some("app".into()), container_port: a.port, ..ContainerPort::default() }]),
        resources: a.resources.clone(),
        security_context: Some(locked_down()),
        // A writable /tmp: most runtimes need one, and the root filesystem is read-only.
        volume_mounts: Some(vec![VolumeMount { name: "app-tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() }]),
        ..Container::default()
    })
}

/// Spread gateway pods over nodes when possible.
fn default_affinity(ctx: &Ctx) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    topology_key: "kubernetes.io/hostname".into(),
                    label_selector: Some(LabelSelector { match_labels: Some(ctx.selector(COMPONENT_GATEWAY)), ..LabelSelector::default() }),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn deployment(ctx: &Ctx) -> Deployment {
    let spec = &ctx.fleet.spec;
    let overrides = spec.gateway.pod_template.clone().unwrap_or_default();
    let mut containers = vec![sidecar(ctx)];
    let mut volumes = Vec::new();
    if let Some(a) = app(ctx) {
        containers.push(a);
        volumes.push(Volume { name: "app-tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() });
    }
    if let (AuthMode::Rs256, Some(r)) = (spec.auth.mode, &spec.auth.public_key_secret_ref) {
        volumes.push(Volume {
            name: "jwt-key".into(),
            secret: Some(SecretVolumeSource { secret_name: Some(r.name.clone()), ..SecretVolumeSource::default() }),
            ..Volume::default()
        });
    }
    let grace = spec.drain.timeout.as_millis().div_ceil(1000) as i64 + GRACE_MARGIN_SECS;
    let pod = PodSpec {
        containers,
        volumes: (!volumes.is_empty()).then_some(volumes),
        termination_grace_period_seconds: Some(grace),
        affinity: Some(overrides.affinity.unwrap_or_else(|| default_affinity(ctx))),
        node_selector: overrides.node_selector,
        tolerations: overrides.tolerations,
        priority_class_name: overrides.priority_class_name,
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
            ..PodSecurityContext::default()
        }),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    Deployment {
        metadata: ctx.meta(deployment_name(ctx), COMPONENT_GATEWAY),
        spec: Some(DeploymentSpec {
            replicas: Some(desired_replicas(ctx)),
            selector: LabelSelector { match_labels: Some(ctx.selector(COMPONENT_GATEWAY)), ..LabelSelector::default() },
            // One pod at a time: each drains its clients onto the others.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(ctx.labels(COMPONENT_GATEWAY)),
                    annotations: overrides.annotations.map(|a| a.into_iter().collect::<BTreeMap<_, _>>()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn client_service(ctx: &Ctx) -> Service {
    let s = &ctx.fleet.spec.gateway.service;
    Service {
        metadata: ctx.meta(ctx.name.clone(), COMPONENT_GATEWAY),
        spec: Some(ServiceSpec {
            type_: Some(s.type_.as_str().into()),
            selector: Some(ctx.selector(COMPONENT_GATEWAY)),
            ports: Some(vec![ServicePort {
                name: Some("ws".into()),
                port: s.port,
                target_port: Some(IntOrString::String("ws".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::build as build_all;
    use super::super::tests::{fleet, generated};
    use super::*;
    use k8s_openapi::api::core::v1::EnvVarSource;
    use kube::ResourceExt;
    use serde_json::json;

    fn deployment_of(spec: serde_json::Value) -> Deployment {
        build_all(&fleet(spec), &generated()).deployments.remove(0)
    }

    fn env_of(c: &Container) -> BTreeMap<String, String> {
        c.env
            .iter()
            .flatten()
            .map(|e| {
                let v = e.value.clone().unwrap_or_else(|| match &e.value_from {
                    Some(EnvVarSource { secret_key_ref: Some(s), .. }) => format!("secret:{}/{}", s.name, s.key),
                    Some(EnvVarSource { field_ref: Some(f), .. }) => format!("field:{}", f.field_path),
                    _ => String::new(),
                });
                (e.name.clone(), v)
            })
            .collect()
    }

    #[test]
    fn the_sidecar_is_injected_and_wired_to_the_fleet() {
        let d = deployment_of(json!({"drain": {"timeout": "90s", "reconnectSpread": "30s"}, "redis": {"durablePublish": true}}));
        assert_eq!(d.name_any(), "chat-gateway");
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(2), "min by default");
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.termination_grace_period_seconds, Some(105), "drain timeout + margin");
        let sidecar = &pod.containers[0];
        let env = env_of(sidecar);
        assert_eq!(env[settings::ENV_REDIS_MODE], "cluster");
        assert_eq!(env[settings::ENV_REDIS_ADDRS], "chat-redis.demo.svc.cluster.local:6379");
        assert_eq!(env[settings::ENV_REDIS_PASSWORD], "secret:chat-redis/password");
        assert_eq!(env[settings::ENV_RESUME_KEY], "secret:chat-resume/key");
        assert_eq!((env[settings::ENV_AUTH].as_str(), env[settings::ENV_JWT_SECRET].as_str()), ("hs256", "secret:chat-jwt/secret"));
        assert_eq!((env[settings::ENV_DRAIN_TIMEOUT].as_str(), env[settings::ENV_DRAIN_SPREAD].as_str()), ("1m30s", "30s"));
        assert_eq!(env[settings::ENV_DURABLE_PUBLISH], "true");
        assert_eq!(env[settings::ENV_NODE_NAME], "field:metadata.name");
        assert_eq!(env[settings::ENV_APP_API_ADDR], "127.0.0.1:8081", "the app API stays inside the pod");
        let ready = sidecar.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
        assert_eq!((ready.path.as_deref(), &ready.port), (Some("/ready"), &IntOrString::Int(9090)));
        let pre_stop = sidecar.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).and_then(|h| h.http_get.as_ref()).expect("preStop");
        assert_eq!(pre_stop.path.as_deref(), Some("/drain/prestop"));
        let sc = sidecar.security_context.as_ref().expect("securityContext");
        assert_eq!((sc.read_only_root_filesystem, sc.run_as_non_root), (Some(true), Some(true)));
        assert!(pod.affinity.as_ref().and_then(|a| a.pod_anti_affinity.as_ref()).is_some(), "spread over nodes");
    }

    #[test]
    fn the_app_container_and_overrides_are_honoured() {
        let d = deployment_of(json!({
            "gateway": {
                "app": {"image": "acme/chat:1", "port": 3000, "env": [{"name": "MODE", "value": "prod"}]},
                "replicas": {"min": 2, "max": 5, "count": 4},
                "podTemplate": {"nodeSelector": {"pool": "edge"}, "tolerations": [{"key": "edge", "operator": "Exists"}]}
            }
        }));
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(4), "the scale subresource's count");
        let pod = spec.template.spec.as_ref().expect("pod");
        let app = &pod.containers[1];
        assert_eq!((app.name.as_str(), app.image.as_deref()), ("app", Some("acme/chat:1")));
        let env = env_of(app);
        assert_eq!((env["MODE"].as_str(), env["SOCKETFLEET_API_URL"].as_str()), ("prod", "http://127.0.0.1:8081"));
        assert_eq!(pod.node_selector.as_ref().map(|n| n["pool"].as_str()), Some("edge"));
        assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn redis_wiring_follows_the_mode() {
        let sentinel = deployment_of(json!({"redis": {"mode": "sentinel"}}));
        let env = env_of(&sentinel.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod").containers[0]);
        assert_eq!(env[settings::ENV_REDIS_SENTINEL_MASTER], "socketfleet");
        assert!(env[settings::ENV_REDIS_ADDRS].starts_with("chat-sentinel-0.chat-sentinel-headless.demo.svc.cluster.local:26379,"));
        let external = deployment_of(json!({"auth": {"mode": "rs256", "publicKeySecretRef": {"name": "jwt", "key": "pub.pem"}},
            "redis": {"mode": "external", "external": {"addresses": ["a:7000", "b:7000"], "mode": "cluster",
                      "passwordSecretRef": {"name": "ext", "key": "pw"}}}}));
        let pod = external.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
        let env = env_of(&pod.containers[0]);
        assert_eq!((env[settings::ENV_REDIS_MODE].as_str(), env[settings::ENV_REDIS_ADDRS].as_str()), ("cluster", "a:7000,b:7000"));
        assert_eq!(env[settings::ENV_REDIS_PASSWORD], "secret:ext/pw");
        assert_eq!(env[settings::ENV_JWT_PUBLIC_KEY_FILE], "/etc/socketfleet/jwt/pub.pem");
        assert!(pod.volumes.iter().flatten().any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("jwt")));
    }

    #[test]
    fn the_client_service_exposes_the_websocket_port() {
        let c = build_all(&fleet(json!({"gateway": {"service": {"type": "LoadBalancer", "port": 443}}})), &generated());
        let svc = c.services.iter().find(|s| s.name_any() == "chat").expect("client service");
        let spec = svc.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!((port.port, port.target_port.clone()), (443, Some(IntOrString::String("ws".into()))));
        assert!(c.pdbs.iter().any(|p| p.name_any() == "chat-gateway"));
    }
}
