//! The apply step: server-side apply of every built child with one field manager, without
//! writing what is already there, and removal of children that are no longer built.
//!
//! Steady-state reconciles make no writes: each child carries the hash of what was applied
//! (`socketfleet.io/applied-hash`); a child whose live copy has the same hash is not sent
//! again. Reads are GETs; the counters in `metrics.rs` count every write by kind and verb.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::build::secrets::{JWT_SECRET_KEY, REDIS_PASSWORD_KEY, RESUME_KEY_KEY, jwt_secret_name, redis_secret_name, resume_secret_name};
use crate::build::{Children, Ctx, Generated, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER};
use crate::error::Result;
use crate::metrics::Metrics;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "socketfleet-operator";
pub const HASH_ANNOTATION: &str = "socketfleet.io/applied-hash";

fn hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).unwrap_or_default();
    Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Applies one child unless its live copy carries the same hash. Returns whether it wrote.
pub async fn apply_one<K>(api: &Api<K>, mut obj: K, metrics: &Metrics) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let wanted = hash(&obj);
    let name = obj.name_any();
    if let Some(live) = api.get_opt(&name).await?
        && live.annotations().get(HASH_ANNOTATION) == Some(&wanted)
    {
        return Ok(false);
    }
    obj.annotations_mut().insert(HASH_ANNOTATION.into(), wanted);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await?;
    metrics.write(K::kind(&()).as_ref(), "apply");
    Ok(true)
}

/// Deletes children of this fleet (by label and owner) that are not in `keep`.
async fn remove_orphans<K>(api: &Api<K>, ctx: &Ctx<'_>, keep: &BTreeSet<String>, metrics: &Metrics) -> Result<usize>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let selector = format!("{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={MANAGER}", ctx.name);
    let uid = ctx.fleet.metadata.uid.clone().unwrap_or_default();
    let mut removed = 0;
    for obj in api.list(&ListParams::default().labels(&selector)).await? {
        let owned = obj.owner_references().iter().any(|o| o.uid == uid && o.controller == Some(true));
        if owned && !keep.contains(&obj.name_any()) {
            api.delete(&obj.name_any(), &DeleteParams::default()).await?;
            metrics.write(K::kind(&()).as_ref(), "delete");
            removed += 1;
        }
    }
    Ok(removed)
}

async fn apply_kind<K>(client: &Client, ctx: &Ctx<'_>, objs: Vec<K>, metrics: &Metrics) -> Result<usize>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &ctx.namespace);
    let keep: BTreeSet<String> = objs.iter().map(|o| o.name_any()).collect();
    let mut writes = 0;
    for obj in objs {
        writes += usize::from(apply_one(&api, obj, metrics).await?);
    }
    writes += remove_orphans(&api, ctx, &keep, metrics).await?;
    Ok(writes)
}

/// Applies every child and removes orphans; returns the number of writes.
pub async fn apply_all(client: &Client, ctx: &Ctx<'_>, children: Children, metrics: &Metrics) -> Result<usize> {
    // Secrets and config first: pods of the workloads read them at start.
    let mut writes = apply_kind(client, ctx, children.secrets, metrics).await?;
    writes += apply_kind(client, ctx, children.config_maps, metrics).await?;
    writes += apply_kind(client, ctx, children.services, metrics).await?;
    writes += apply_kind(client, ctx, children.stateful_sets, metrics).await?;
    writes += apply_kind(client, ctx, children.deployments, metrics).await?;
    writes += apply_kind(client, ctx, children.pdbs, metrics).await?;
    Ok(writes)
}

/// 32 random bytes as 64 hex digits.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Values of generated Secrets: read back when they exist (never overwritten), generated
/// once otherwise.
pub async fn generated(client: &Client, ctx: &Ctx<'_>) -> Result<Generated> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &ctx.namespace);
    let read = |secret: Option<Secret>, key: &str| {
        secret.and_then(|s| s.data).and_then(|d| d.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned())).filter(|v| !v.is_empty())
    };
    Ok(Generated {
        redis_password: read(api.get_opt(&redis_secret_name(ctx)).await?, REDIS_PASSWORD_KEY).unwrap_or_else(random_secret),
        resume_key: read(api.get_opt(&resume_secret_name(ctx)).await?, RESUME_KEY_KEY).unwrap_or_else(random_secret),
        jwt_secret: read(api.get_opt(&jwt_secret_name(ctx)).await?, JWT_SECRET_KEY).unwrap_or_else(random_secret),
    })
}

/// Kinds the operator applies, for RBAC documentation and tests.
pub const APPLIED_KINDS: [&str; 6] = ["Secret", "ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::build;
    use crate::build::tests::{fleet, generated as fixed};

    #[test]
    fn hashes_are_stable_and_change_with_the_spec() {
        let a = build(&fleet(serde_json::json!({})), &fixed());
        let b = build(&fleet(serde_json::json!({})), &fixed());
        let c = build(&fleet(serde_json::json!({"gateway": {"replicas": {"min": 3}}})), &fixed());
        assert_eq!(hash(&a.deployments[0]), hash(&b.deployments[0]));
        assert_ne!(hash(&a.deployments[0]), hash(&c.deployments[0]));
        assert_eq!(hash(&a.secrets[0]).len(), 24);
        let kinds: Vec<&str> = a.names().iter().map(|(k, _)| *k).collect::<BTreeSet<_>>().into_iter().collect();
        assert!(kinds.iter().all(|k| APPLIED_KINDS.contains(k)), "{kinds:?}");
    }

    #[test]
    fn generated_secrets_are_long_and_random() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
