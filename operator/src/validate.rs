//! The first step of reconcile: the CRD's own CEL rules, evaluated by the operator too.
//!
//! The API server already refuses objects that break them; evaluating the same generated
//! schema here (with `kube-cel`) means the rules are written once, and an object admitted
//! by an older CRD still gets the same message instead of half-built children.

use std::sync::OnceLock;

use kube::CustomResourceExt;
use kube_cel::CompiledSchema;
use serde_json::Value;

use crate::crd::SocketFleet;

/// The rules a spec breaks, each as the message the API server would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

/// The CRD's `openAPIV3Schema`, compiled once.
fn compiled() -> &'static CompiledSchema {
    static SCHEMA: OnceLock<CompiledSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| kube_cel::compile_schema(&schema()))
}

/// The CRD's `openAPIV3Schema` as JSON.
pub fn schema() -> Value {
    let crd = SocketFleet::crd();
    let schema = crd.spec.versions.first().and_then(|v| v.schema.as_ref()).and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Checks an object (and, for an update, its previous version) against every rule.
pub fn check(object: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    match kube_cel::validate_compiled(compiled(), object, old) {
        Ok(()) => Ok(()),
        Err(errors) => Err(Invalid(errors.iter().map(|e| e.message.clone()).collect())),
    }
}

/// Checks a fleet as created.
pub fn validate(fleet: &SocketFleet) -> Result<(), Invalid> {
    let object = serde_json::to_value(fleet).map_err(|e| Invalid(vec![e.to_string()]))?;
    check(&object, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fleet(spec: Value) -> Value {
        json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet", "metadata": {"name": "t"}, "spec": spec})
    }

    /// Every rule, broken once: the message names the field and what to do.
    #[test]
    fn each_cross_field_rule_refuses_with_its_message() {
        let cases = [
            (json!({"gateway": {"replicas": {"min": 5, "max": 2}}}), "replicas.min must not be greater than replicas.max"),
            (json!({"gateway": {"replicas": {"min": 2, "max": 4, "count": 9}}}), "must be within replicas.min and replicas.max"),
            (json!({"redis": {"mode": "cluster", "shards": 2}}), "at least 3 shards"),
            (json!({"redis": {"mode": "sentinel", "shards": 3}}), "redis.shards applies only to mode: cluster"),
            (json!({"redis": {"mode": "external"}}), "mode: external requires redis.external.addresses"),
            (json!({"redis": {"mode": "cluster", "external": {"addresses": ["r:6379"]}}}), "only used with redis.mode: external"),
            (json!({"redis": {"durablePublish": true, "replicasPerShard": 0}}), "durablePublish waits for a replica"),
            (json!({"redis": {"mode": "sentinel", "replicasPerShard": 0}}), "mode: sentinel needs redis.replicasPerShard"),
            (
                json!({"redis": {"mode": "external", "external": {"addresses": ["s:26379"], "mode": "sentinel"}}}),
                "requires redis.external.sentinelMaster",
            ),
            (json!({"auth": {"mode": "rs256"}}), "rs256 requires auth.publicKeySecretRef"),
            (
                json!({"auth": {"mode": "none", "jwtSecretRef": {"name": "s", "key": "k"}}}),
                "jwtSecretRef is only used with auth.mode: hs256",
            ),
            (json!({"drain": {"timeout": "10s", "reconnectSpread": "20s"}}), "reconnectSpread must be more than 2s shorter"),
            (json!({"drain": {"timeout": "10s", "reconnectSpread": "8s"}}), "reconnectSpread must be more than 2s shorter"),
            (json!({"gateway": {"app": {"image": "app:1", "port": 8080}}}), "app.port must not be 8080, 8081 or 9090"),
            (json!({"resumeWindow": "5s"}), "resumeWindow must be at least 10s"),
            (json!({"channels": {"historyTtl": "500ms"}}), "historyTtl must be at least 1s"),
        ];
        for (spec, want) in cases {
            let err = check(&fleet(spec.clone()), None).expect_err(&format!("{spec} must be refused"));
            assert!(err.0.iter().any(|m| m.contains(want)), "{spec}: got {err}, want {want:?}");
        }
    }

    #[test]
    fn defaults_and_complete_specs_pass() {
        check(&fleet(json!({})), None).expect("an empty spec takes the defaults");
        let full = json!({
            "gateway": {"app": {"image": "app:1", "port": 3000}, "replicas": {"min": 2, "max": 20, "count": 4},
                        "service": {"type": "LoadBalancer", "port": 443}},
            "autoscaling": {"enabled": true, "targetConnectionsPerPod": 5000},
            "redis": {"mode": "cluster", "shards": 3, "replicasPerShard": 1, "durablePublish": true,
                      "persistence": {"enabled": true, "size": "5Gi"}},
            "channels": {"historySize": 1000, "historyTtl": "10m"},
            "auth": {"mode": "rs256", "publicKeySecretRef": {"name": "jwt", "key": "pub.pem"}},
            "drain": {"timeout": "60s", "reconnectSpread": "20s"},
            "resumeWindow": "5m"
        });
        check(&fleet(full), None).expect("valid");
        let external = json!({"redis": {"mode": "external", "replicasPerShard": 0, "durablePublish": true,
                                        "external": {"addresses": ["s:26379"], "mode": "sentinel", "sentinelMaster": "m"}}});
        check(&fleet(external), None).expect("external mode needs no replicas of ours");
    }

    #[test]
    fn immutable_fields_refuse_changes_but_allow_the_rest() {
        let old = fleet(json!({"redis": {"mode": "cluster", "shards": 3}}));
        let cases = [
            (json!({"redis": {"mode": "sentinel"}}), "redis.mode cannot be changed"),
            (json!({"redis": {"mode": "cluster", "shards": 6}}), "redis.shards cannot be changed"),
            (json!({"redis": {"mode": "cluster", "shards": 3, "persistence": {"enabled": true}}}), "redis.persistence cannot be changed"),
        ];
        for (spec, want) in cases {
            let err = check(&fleet(spec.clone()), Some(&old)).expect_err(&format!("{spec} must be refused"));
            assert!(err.0.iter().any(|m| m.contains(want)), "{spec}: got {err}, want {want:?}");
        }
        let scaled = fleet(json!({"redis": {"mode": "cluster", "shards": 3}, "gateway": {"replicas": {"count": 5}}}));
        check(&scaled, Some(&old)).expect("scaling the gateway is a change like any other");
    }

    #[test]
    fn the_typed_spec_round_trips_through_the_rules() {
        let fleet: SocketFleet = serde_json::from_value(fleet(json!({"redis": {"shards": 2}}))).expect("parses");
        assert!(validate(&fleet).expect_err("2 shards").to_string().contains("at least 3 shards"));
    }
}
