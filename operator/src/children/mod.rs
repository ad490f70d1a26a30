//! The build step of reconcile: every child object of a fleet, from its spec alone.
//!
//! Pure: no API calls, no clock, no randomness. Generated secrets are passed in (`apply`
//! reads the existing ones and generates only what is missing), so building twice gives
//! the same objects and tests are plain unit tests over a spec.
//!
//! - [`secrets`]: the Redis password, the resume-token key, the JWT secret;
//! - [`redis`]: redis.conf, Services, the StatefulSet(s) and PDB of cluster and sentinel mode;
//! - [`gateway`]: the gateway Deployment (sidecar injected), its Service and PDB.

pub mod gateway;
pub mod redis;
pub mod secrets;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use socketfleet_api::crd::{RedisMode, SocketFleet};

/// The values `build` must not invent: generated once, then read back from their Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub redis_password: String,
    pub resume_key: String,
    /// For auth hs256 without a `jwtSecretRef`.
    pub jwt_secret: String,
}

/// Every child of a fleet.
#[derive(Debug, Clone, Default)]
pub struct Children {
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub services: Vec<Service>,
    pub stateful_sets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Children {
    /// `(kind, name)` of every child, for orphan detection and tests.
    pub fn names(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(self.secrets.iter().map(|o| ("Secret", o.name_any())));
        out.extend(self.config_maps.iter().map(|o| ("ConfigMap", o.name_any())));
        out.extend(self.services.iter().map(|o| ("Service", o.name_any())));
        out.extend(self.stateful_sets.iter().map(|o| ("StatefulSet", o.name_any())));
        out.extend(self.deployments.iter().map(|o| ("Deployment", o.name_any())));
        out.extend(self.pdbs.iter().map(|o| ("PodDisruptionBudget", o.name_any())));
        out
    }
}

/// Builds every child of `fleet`.
pub fn build(fleet: &SocketFleet, generated: &Generated) -> Children {
    let ctx = Ctx::new(fleet);
    let mut c = Children { secrets: secrets::build(&ctx, generated), ..Children::default() };
    if fleet.spec.redis.mode != RedisMode::External {
        redis::build(&ctx, &mut c);
    }
    gateway::build(&ctx, &mut c);
    c
}

/// The component label values.
pub const COMPONENT_REDIS: &str = "redis";
pub const COMPONENT_SENTINEL: &str = "sentinel";
pub const COMPONENT_GATEWAY: &str = "gateway";
/// `app.kubernetes.io/managed-by` of everything the operator creates.
pub const MANAGER: &str = "socketfleet-operator";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// What every builder needs: the fleet, its names, labels and owner reference.
pub struct Ctx<'a> {
    pub fleet: &'a SocketFleet,
    pub name: String,
    pub namespace: String,
}

impl<'a> Ctx<'a> {
    pub fn new(fleet: &'a SocketFleet) -> Ctx<'a> {
        Ctx { fleet, name: fleet.name_any(), namespace: fleet.namespace().unwrap_or_else(|| "default".into()) }
    }

    /// `<fleet>-<suffix>`.
    pub fn child(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// Labels that select a component's pods (stable: they are in selectors).
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "socketfleet".to_string()),
            (LABEL_INSTANCE.to_string(), self.name.clone()),
            (LABEL_COMPONENT.to_string(), component.to_string()),
        ])
    }

    /// The selector as a label-selector string (`k=v,k=v`), for list calls and the scale
    /// subresource.
    pub fn selector_string(&self, component: &str) -> String {
        self.selector(component).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }

    /// Every label of a child.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut l = self.selector(component);
        l.insert(LABEL_MANAGED_BY.to_string(), MANAGER.to_string());
        l.insert("app.kubernetes.io/part-of".to_string(), "socketfleet".to_string());
        l.insert("app.kubernetes.io/version".to_string(), env!("CARGO_PKG_VERSION").to_string());
        l
    }

    pub fn owner(&self) -> OwnerReference {
        OwnerReference {
            api_version: SocketFleet::api_version(&()).to_string(),
            kind: SocketFleet::kind(&()).to_string(),
            name: self.name.clone(),
            uid: self.fleet.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    pub fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn fleet(spec: serde_json::Value) -> SocketFleet {
        let mut f: SocketFleet = serde_json::from_value(serde_json::json!({
            "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
            "metadata": {"name": "chat", "namespace": "demo", "uid": "uid-1", "generation": 1},
            "spec": spec
        }))
        .expect("a valid fleet");
        f.metadata.uid = Some("uid-1".into());
        f
    }

    pub fn generated() -> Generated {
        Generated { redis_password: "pw".into(), resume_key: "rk".into(), jwt_secret: "js".into() }
    }

    #[test]
    fn every_child_is_owned_and_labelled() {
        for spec in [
            serde_json::json!({}),
            serde_json::json!({"redis": {"mode": "sentinel"}}),
            serde_json::json!({"redis": {"mode": "external", "external": {"addresses": ["r:6379"]}}}),
        ] {
            let f = fleet(spec);
            let c = build(&f, &generated());
            let metas: Vec<&ObjectMeta> = c
                .secrets
                .iter()
                .map(|o| &o.metadata)
                .chain(c.config_maps.iter().map(|o| &o.metadata))
                .chain(c.services.iter().map(|o| &o.metadata))
                .chain(c.stateful_sets.iter().map(|o| &o.metadata))
                .chain(c.deployments.iter().map(|o| &o.metadata))
                .chain(c.pdbs.iter().map(|o| &o.metadata))
                .collect();
            assert!(!metas.is_empty());
            for m in metas {
                let owner = &m.owner_references.as_ref().expect("owner")[0];
                assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("SocketFleet", "uid-1", Some(true)));
                let labels = m.labels.as_ref().expect("labels");
                assert_eq!(labels.get(LABEL_INSTANCE).map(String::as_str), Some("chat"));
                assert_eq!(labels.get(LABEL_MANAGED_BY).map(String::as_str), Some(MANAGER));
                assert_eq!(m.namespace.as_deref(), Some("demo"));
            }
        }
    }

    /// The CRD's name limit is exactly what the children need: with the longest admitted
    /// name, every Service name and label value fits 63 characters and every StatefulSet
    /// leaves room for its pods' `controller-revision-hash` label (name + 11).
    #[test]
    fn the_longest_admitted_name_gives_valid_children_in_every_mode() {
        let name = "a".repeat(socketfleet_api::crd::MAX_NAME_LEN);
        for spec in [
            serde_json::json!({}),
            serde_json::json!({"redis": {"mode": "sentinel"}}),
            serde_json::json!({"redis": {"mode": "external", "external": {"addresses": ["r:6379"]}}}),
        ] {
            let mut f = fleet(spec);
            f.metadata.name = Some(name.clone());
            let c = build(&f, &generated());
            for (kind, child) in c.names() {
                assert!(child.len() <= 63, "{kind} {child} is {} characters", child.len());
            }
            for sts in &c.stateful_sets {
                assert!(sts.name_any().len() + 11 <= 63, "StatefulSet {} leaves no room for its revision label", sts.name_any());
            }
            for labels in c.services.iter().filter_map(|s| s.metadata.labels.as_ref()) {
                assert!(labels.values().all(|v| v.len() <= 63));
            }
        }
        let longest = [&name, "-sentinel-headless"].concat();
        assert_eq!(longest.len(), 61, "the longest child, {longest}, with two characters to spare");
    }

    #[test]
    fn building_twice_gives_the_same_objects() {
        let f = fleet(serde_json::json!({"redis": {"persistence": {"enabled": true}}}));
        let a = serde_json::to_string(&build(&f, &generated()).stateful_sets).expect("json");
        let b = serde_json::to_string(&build(&f, &generated()).stateful_sets).expect("json");
        assert_eq!(a, b);
    }
}
