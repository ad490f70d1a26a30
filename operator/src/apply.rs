//! The apply step: server-side apply of every built child with one field manager, without
//! writing what is already there, and removal of children that are no longer built.
//!
//! A child is sent again when its live copy no longer holds every field the operator owns
//! ([`owns_all`]: the built object must be a subset of the live one, so a hand edit of
//! replicas, an image, an env value, a Service port or a PDB is put back), or when the
//! built object changed (its hash, `socketfleet.io/applied-hash`, differs: that catches
//! fields the operator stopped setting, which a subset test cannot see). Steady-state
//! reconciles therefore read and never write. A child whose controller is another object
//! (another fleet claiming the same name) is not touched: that is a [`Error::NameConflict`].
//! When a forced apply still leaves another manager's list item in place (an edited
//! Service port is a new item of the port-keyed list), a merge patch of the built object
//! replaces the lists whole.
//! Every write is counted in `metrics.rs` by kind and verb before it is sent, failed ones too.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::children::{Children, Ctx, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The one field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "socketfleet-operator";
pub const HASH_ANNOTATION: &str = "socketfleet.io/applied-hash";

fn hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).unwrap_or_default();
    Sha256::digest(&bytes).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether `live` holds every field of `wanted` with the same value.
///
/// Maps: every key of `wanted` is in `live` (extra keys are defaults or other managers').
/// Lists of objects with a `name` (containers, env, ports, volumes): each wanted item has a
/// live item of that name holding it. Other lists: the same length, item by item. An empty
/// list or map, `false`, `0` and `""` match an absent field (the API server drops some).
pub fn owns_all(wanted: &Value, live: Option<&Value>) -> bool {
    let absent = matches!(live, None | Some(Value::Null));
    match wanted {
        Value::Object(w) => match live {
            Some(Value::Object(l)) => w.iter().all(|(k, v)| owns_all(v, l.get(k))),
            _ => absent && w.is_empty(),
        },
        Value::Array(w) => match live {
            Some(Value::Array(l)) if w.iter().all(|i| i.get("name").is_some_and(Value::is_string)) && !w.is_empty() => {
                w.iter().all(|item| l.iter().find(|li| li.get("name") == item.get("name")).is_some_and(|li| owns_all(item, Some(li))))
            }
            Some(Value::Array(l)) => l.len() == w.len() && w.iter().zip(l).all(|(a, b)| owns_all(a, Some(b))),
            _ => absent && w.is_empty(),
        },
        Value::Bool(false) if absent => true,
        Value::String(s) if absent => s.is_empty(),
        Value::Number(n) if absent => n.as_f64() == Some(0.0),
        _ => live == Some(wanted),
    }
}

/// Applies one child unless its live copy already holds it. Returns whether it wrote.
pub async fn apply_one<K>(api: &Api<K>, mut obj: K, owner_uid: &str, metrics: &Metrics) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let applied_hash = hash(&obj);
    obj.annotations_mut().insert(HASH_ANNOTATION.into(), applied_hash);
    let name = obj.name_any();
    let kind = K::kind(&()).to_string();
    let wanted = serde_json::to_value(&obj).unwrap_or_default();
    let holds = |live: &K| owns_all(&wanted, Some(&serde_json::to_value(live).unwrap_or_default()));
    let live = api.get_opt(&name).await?;
    if let Some(live) = &live {
        if let Some(other) = live.owner_references().iter().find(|o| o.controller == Some(true) && o.uid != owner_uid) {
            return Err(Error::NameConflict { kind, name, owner: format!("{} {}", other.kind, other.name) });
        }
        if holds(live) {
            return Ok(false);
        }
    }
    metrics.write(&kind, "apply");
    let applied = api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj)).await;
    // A forced apply takes over the fields we set, but a list item whose key another
    // manager changed (a Service port edited from 80 to 81) is that manager's item and
    // stays, next to ours (or the result is invalid: two ports named `ws`). A merge patch
    // of the built object replaces our lists whole, which puts such an edit back.
    let merge = match &applied {
        Ok(after) => !holds(after),
        Err(kube::Error::Api(status)) => status.code == 422 && live.is_some(),
        Err(_) => false,
    };
    if merge {
        metrics.write(&kind, "merge-patch");
        api.patch(&name, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }, &Patch::Merge(&obj)).await?;
    } else {
        applied?;
    }
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
            metrics.write(K::kind(&()).as_ref(), "delete");
            api.delete(&obj.name_any(), &DeleteParams::default()).await?;
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
    let uid = ctx.fleet.metadata.uid.clone().unwrap_or_default();
    let mut writes = 0;
    for obj in objs {
        writes += usize::from(apply_one(&api, obj, &uid, metrics).await?);
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

/// Kinds the operator applies, for RBAC documentation and tests.
pub const APPLIED_KINDS: [&str; 6] = ["Secret", "ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::build;
    use crate::children::tests::{fleet, generated as fixed};

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
    fn a_hand_edit_of_an_owned_field_is_drift_and_defaults_are_not() {
        let wanted = serde_json::json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "sidecar", "image": "socketfleet/sidecar:0.1.0", "env": [{"name": "A", "value": "1"}], "volumeMounts": []}]}}}});
        let live = serde_json::json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600, "template": {"spec": {"containers": [
            {"name": "app", "image": "x"},
            {"name": "sidecar", "image": "socketfleet/sidecar:0.1.0", "terminationMessagePath": "/dev/termination-log",
             "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}]}}}});
        assert!(owns_all(&wanted, Some(&live)), "defaults, other managers' items and dropped empty lists are not drift");
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = serde_json::json!(7);
        assert!(!owns_all(&wanted, Some(&scaled)), "kubectl scale");
        let mut image = live.clone();
        image["spec"]["template"]["spec"]["containers"][1]["image"] = serde_json::json!("evil/sidecar:latest");
        assert!(!owns_all(&wanted, Some(&image)), "kubectl set image");
        let mut env = live.clone();
        env["spec"]["template"]["spec"]["containers"][1]["env"][1]["value"] = serde_json::json!("9");
        assert!(!owns_all(&wanted, Some(&env)), "an env value");
        let ports = serde_json::json!({"spec": {"ports": [{"name": "ws", "port": 80}]}});
        assert!(!owns_all(&ports, Some(&serde_json::json!({"spec": {"ports": [{"name": "ws", "port": 81}]}}))), "a Service port");
        assert!(
            !owns_all(&serde_json::json!({"args": ["a", "b"]}), Some(&serde_json::json!({"args": ["a"]}))),
            "plain lists compare whole"
        );
    }
}
