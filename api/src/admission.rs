//! Admission: the CRD's own CEL rules, evaluated outside the API server too (the operator's
//! first reconcile step, and `socketfleet local` reading a fleet file).
//!
//! The API server already refuses objects that break them; evaluating the same generated
//! schema here (with `kube-cel`) means the rules are written once, and an object admitted
//! by an older CRD still gets the same message instead of half-built children. Each
//! message starts with the field's path, as the API server's do.

use std::sync::OnceLock;

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
    let crd = crate::crd::definition();
    let schema = crd.spec.versions.first().and_then(|v| v.schema.as_ref()).and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Checks an object (and, for an update, its previous version) against every rule.
pub fn check(object: &Value, old: Option<&Value>) -> Result<(), Invalid> {
    match kube_cel::validate_compiled(compiled(), object, old) {
        Ok(()) => Ok(()),
        Err(errors) => Err(Invalid(
            errors
                .iter()
                .map(|e| if e.field_path.is_empty() { e.message.clone() } else { format!("{}: {}", e.field_path, e.message) })
                .collect(),
        )),
    }
}

/// Checks a fleet, and with `old` (the version last accepted) the rules about changes.
pub fn validate(fleet: &SocketFleet, old: Option<&SocketFleet>) -> Result<(), Invalid> {
    let json = |f: &SocketFleet| serde_json::to_value(f).map_err(|e| Invalid(vec![e.to_string()]));
    let object = json(fleet)?;
    let old = old.map(json).transpose()?;
    check(&object, old.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fleet(spec: Value) -> Value {
        named("t", spec)
    }

    fn named(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet", "metadata": {"name": name}, "spec": spec})
    }

    /// What an outside test found admitted, each now refused with a message that says what
    /// to fix.
    #[test]
    fn specs_whose_pods_could_never_run_are_refused() {
        let ext = |addresses: Value, mode: &str| json!({"redis": {"mode": "external", "external": {"addresses": addresses, "mode": mode}}});
        let host_port = "every address must be host:port";
        let cases = [
            (ext(json!(["redis.example.com"]), "standalone"), host_port),
            (ext(json!(["10.0.0.5:99999"]), "standalone"), host_port),
            (ext(json!([""]), "standalone"), host_port),
            (ext(json!(["redis://10.0.0.5:6379"]), "standalone"), host_port),
            (ext(json!(["a:6379", "b:6379"]), "standalone"), "standalone takes exactly one address"),
            (json!({"gateway": {"sidecar": {"image": " redis:7.2"}}}), "must be an image reference"),
            (json!({"gateway": {"sidecar": {"image": "socketfleet/sidecar 0.1.0"}}}), "must be an image reference"),
            (json!({"redis": {"image": "redis:7.0\n"}}), "must be an image reference"),
            (json!({"gateway": {"app": {"image": "acme/UPPER:1", "port": 3000}}}), "must be an image reference"),
        ];
        for (spec, want) in cases {
            let err = check(&fleet(spec.clone()), None).expect_err(&format!("{spec} must be refused"));
            assert!(err.0.iter().any(|m| m.contains(want)), "{spec}: got {err}, want {want:?}");
        }
        let long = "a".repeat(crate::crd::MAX_NAME_LEN + 1);
        for bad in [long.as_str(), "chat.v2", "Chat", "9lives", "chat-"] {
            let err = check(&named(bad, json!({})), None).expect_err(bad);
            assert!(err.0.iter().any(|m| m.contains("metadata.name must be at most 43 characters")), "{bad}: {err}");
        }
        check(&named(&"a".repeat(crate::crd::MAX_NAME_LEN), json!({})), None).expect("the longest name");
        for good in ["redis:7.0", "registry.example.com:5000/team/app:1.4", "app@sha256:".to_string().as_str(), "ghcr.io/acme/chat-app:1.4"]
        {
            let spec = json!({"gateway": {"sidecar": {"image": good}}});
            assert_eq!(check(&fleet(spec), None).is_ok(), !good.ends_with(':'), "{good}");
        }
        let digest = format!("socketfleet/sidecar@sha256:{}", "a".repeat(64));
        check(&fleet(json!({"gateway": {"sidecar": {"image": digest}}})), None).expect("a digest");
        check(&fleet(ext(json!(["[fd00::1]:6379"]), "standalone")), None).expect("IPv6 in brackets");
        check(&fleet(ext(json!(["a:7000", "b:7000"]), "cluster")), None).expect("cluster seeds");
        check(
            &fleet(json!({"drain": {"timeout": "1m30s", "reconnectSpread": "0s"}, "resumeWindow": "15s",
                            "channels": {"historyTtl": "59m57s"}})),
            None,
        )
        .expect("compound and zero durations");
    }

    #[test]
    fn shards_can_change_both_ways_but_never_below_three() {
        let unset = fleet(json!({"redis": {"mode": "cluster"}}));
        check(&fleet(json!({"redis": {"mode": "cluster", "shards": 6}})), Some(&unset)).expect("3 (default) to 6");
        check(&fleet(json!({"redis": {"mode": "cluster", "shards": 3}})), Some(&fleet(json!({"redis": {"shards": 5}})))).expect("5 to 3");
        let err = check(&fleet(json!({"redis": {"mode": "cluster", "shards": 2}})), Some(&unset)).expect_err("3 to 2");
        assert!(err.to_string().contains("at least 3 shards"), "{err}");
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
            (json!({"resumeWindow": "5s"}), "spec.resumeWindow: must be a duration like 500ms, 90s, 1m30s or 2h, from 10s to 24h"),
            (
                json!({"channels": {"historyTtl": "500ms"}}),
                "spec.channels.historyTtl: must be a duration like 500ms, 90s, 1m30s or 2h, from 1s to 720h",
            ),
            (json!({"drain": {"timeout": "18446744073709551615s"}}), "spec.drain.timeout: must be a duration"),
            (json!({"drain": {"timeout": "2h"}}), "from 5s to 1h"),
            (json!({"resumeWindow": "ten minutes"}), "spec.resumeWindow: must be a duration"),
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
            "autoscaling": {"enabled": true, "mode": "external", "targetConnectionsPerPod": 5000, "buffer": 500},
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
    fn kubectl_scale_is_refused_while_the_builtin_autoscaler_scales() {
        let counted = |autoscaling: serde_json::Value| {
            fleet(json!({"gateway": {"replicas": {"min": 2, "max": 10, "count": 4}}, "autoscaling": autoscaling}))
        };
        let err = format!("{:?}", check(&counted(json!({"enabled": true})), None).expect_err("builtin by default"));
        assert!(err.contains("cannot be set while autoscaling.mode is builtin") && err.contains("mode: external"), "{err}");
        check(&counted(json!({"enabled": true, "mode": "external"})), None).expect("an HPA drives count");
        check(&counted(json!({"enabled": false})), None).expect("kubectl scale without autoscaling");
        check(&fleet(json!({"autoscaling": {"enabled": true}})), None).expect("builtin without count");
    }

    #[test]
    fn immutable_fields_refuse_changes_but_allow_the_rest() {
        let old = fleet(json!({"redis": {"mode": "cluster", "shards": 3}}));
        let cases = [
            (json!({"redis": {"mode": "sentinel"}}), "redis.mode cannot be changed"),
            (json!({"redis": {"mode": "cluster", "shards": 3, "persistence": {"enabled": true}}}), "redis.persistence cannot be changed"),
        ];
        for (spec, want) in cases {
            let err = check(&fleet(spec.clone()), Some(&old)).expect_err(&format!("{spec} must be refused"));
            assert!(err.0.iter().any(|m| m.contains(want)), "{spec}: got {err}, want {want:?}");
        }
        let scaled = fleet(json!({"redis": {"mode": "cluster", "shards": 3}, "gateway": {"replicas": {"count": 5}}}));
        check(&scaled, Some(&old)).expect("scaling the gateway is a change like any other");
        let kept = fleet(json!({"redis": {"persistence": {"enabled": true, "storageClassName": "fast"}}}));
        let released = fleet(json!({"redis": {"persistence": {"enabled": true, "storageClassName": "fast", "retainOnDelete": false}}}));
        check(&released, Some(&kept)).expect("retainOnDelete can change at any time");
        let moved = fleet(json!({"redis": {"persistence": {"enabled": true, "storageClassName": "slow"}}}));
        assert!(check(&moved, Some(&kept)).expect_err("a new class").to_string().contains("redis.persistence cannot be changed"));
        let unset = fleet(json!({"redis": {"persistence": {"enabled": true}}}));
        assert!(check(&unset, Some(&kept)).is_err(), "a class removed");
    }

    #[test]
    fn the_typed_spec_round_trips_through_the_rules() {
        let fleet: SocketFleet = serde_json::from_value(fleet(json!({"redis": {"shards": 2}}))).expect("parses");
        assert!(validate(&fleet, None).expect_err("2 shards").to_string().contains("at least 3 shards"));
    }
}
