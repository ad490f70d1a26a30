//! Property: every spec the CRD admits gives gateway pods whose sidecar accepts its env.
//!
//! Specs are generated inside the schema's single-field bounds (integer ranges, enums),
//! with durations in and out of their ranges and in every spelling of the grammar; the
//! CRD's CEL rules (the same evaluation the API server and the operator run) decide which
//! are admitted. For each admitted spec the operator's real build step makes the
//! Deployment, and its sidecar container's env goes through the sidecar's own parser.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::EnvVarSource;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};
use socketfleet_api::admission::check;
use socketfleet_api::crd::SocketFleet;
use socketfleet_api::settings::SidecarSettings;
use socketfleet_operator::children::{Generated, build};

/// A duration of `ms` milliseconds, spelled one of the ways the grammar allows.
fn spelled(ms: u64, style: u8) -> String {
    match style % 3 {
        0 => socketfleet_api::duration::format_millis(ms),
        1 if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// A duration mostly inside `min..=max` (its ends included), sometimes outside.
fn duration(min: u64, max: u64) -> impl Strategy<Value = String> {
    let ms = prop_oneof![
        6 => min..=max,
        1 => Just(min),
        1 => Just(max),
        1 => 0..=max.saturating_mul(2),
    ];
    (ms, any::<u8>()).prop_map(|(ms, style)| spelled(ms, style))
}

const S: u64 = 1000;
const H: u64 = 3_600_000;

fn redis() -> impl Strategy<Value = Value> {
    let address = prop_oneof![
        4 => Just("redis.internal:6379"),
        2 => Just("10.0.0.5:7000"),
        2 => Just("[fd00::1]:6379"),
        1 => Just("redis.example.com"),
        1 => Just("redis://10.0.0.5:6379"),
        1 => Just("h:99999"),
    ];
    (
        prop_oneof![Just("cluster"), Just("sentinel"), Just("external")],
        proptest::option::weighted(0.5, 3..=100i32),
        prop_oneof![1 => Just(0), 4 => 1..=5i32],
        proptest::bool::weighted(0.3),
        prop_oneof![Just("standalone"), Just("cluster"), Just("sentinel")],
        proptest::collection::vec(address, 1..4),
        any::<bool>(),
    )
        .prop_map(|(mode, shards, replicas, durable, ext_mode, addresses, password)| {
            let mut r = json!({"mode": mode, "replicasPerShard": replicas, "durablePublish": durable});
            if let (Some(s), "cluster") = (shards, mode) {
                r["shards"] = json!(s);
            }
            if mode == "external" {
                let addresses = if ext_mode == "standalone" { addresses[..1].to_vec() } else { addresses };
                let mut e = json!({"addresses": addresses, "mode": ext_mode, "sentinelMaster": "m"});
                if password {
                    e["passwordSecretRef"] = json!({"name": "ext", "key": "pw"});
                }
                r["external"] = e;
            }
            r
        })
}

fn spec() -> impl Strategy<Value = Value> {
    (
        (1..=1000i32, 0..=50i32, proptest::option::of(0..=50i32)),
        redis(),
        (prop_oneof![1..=10_000i32, Just(10_000_000)], duration(S, 720 * H)),
        prop_oneof![Just("hs256"), Just("rs256"), Just("none")],
        (duration(5 * S, H), 0.0..1.2f64, any::<u8>()),
        duration(10 * S, 24 * H),
        proptest::option::of(prop_oneof![Just(3000), Just(8080), 1..=65535i32]),
    )
        .prop_map(|((min, extra, count), redis, (history, ttl), auth, (timeout, spread, style), resume, app_port)| {
            let max = (min + extra).min(1000);
            let mut replicas = json!({"min": min, "max": max});
            if let Some(c) = count {
                replicas["count"] = json!((min + c).min(1000));
            }
            let mut gateway = json!({"replicas": replicas});
            if let Some(port) = app_port {
                gateway["app"] = json!({"image": "acme/app:1", "port": port});
            }
            let auth = match auth {
                "rs256" => json!({"mode": "rs256", "publicKeySecretRef": {"name": "jwt", "key": "pub.pem"}}),
                other => json!({"mode": other}),
            };
            // The spread as a fraction of the timeout: the rule between them is the edge.
            let timeout_ms = socketfleet_api::duration::parse_millis(&timeout).unwrap_or(0);
            let spread = spelled((timeout_ms as f64 * spread) as u64, style);
            json!({
                "gateway": gateway, "redis": redis, "auth": auth, "resumeWindow": resume,
                "channels": {"historySize": history, "historyTtl": ttl},
                "drain": {"timeout": timeout, "reconnectSpread": spread},
            })
        })
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
           "metadata": {"name": "chat", "namespace": "demo", "uid": "u1"}, "spec": spec})
}

/// The sidecar container's env as the kubelet would fill it in.
fn pod_env(fleet: &SocketFleet) -> HashMap<String, String> {
    let generated = Generated { redis_password: "p".repeat(64), resume_key: "r".repeat(64), jwt_secret: "j".repeat(64) };
    let children = build(fleet, &generated);
    let pod = children.deployments[0].spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod template");
    let sidecar = pod.containers.iter().find(|c| c.name == "sidecar").expect("the sidecar container");
    sidecar
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(EnvVarSource { secret_key_ref: Some(_), .. })) => "s".repeat(64),
                (None, Some(EnvVarSource { field_ref: Some(_), .. })) => "chat-gateway-abc12".into(),
                _ => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 20_000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn every_admitted_spec_gives_a_sidecar_env_that_parses(spec in spec()) {
        let obj = object(spec);
        prop_assume!(check(&obj, None).is_ok());
        let fleet: SocketFleet = serde_json::from_value(obj).expect("an admitted object reads as a fleet");
        let env = pod_env(&fleet);
        let parsed = SidecarSettings::from_lookup(&|k| env.get(k).cloned());
        prop_assert!(parsed.is_ok(), "admitted {:?} but the sidecar says {:?}", fleet.spec, parsed.err());
    }
}

/// The generator reaches both sides of the rules: a property over only-refused specs
/// would prove nothing.
#[test]
fn the_generator_makes_admitted_and_refused_specs() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut admitted, mut refused) = (0, 0);
    for _ in 0..300 {
        let spec = spec().new_tree(&mut runner).expect("a spec").current();
        if check(&object(spec), None).is_ok() { admitted += 1 } else { refused += 1 }
    }
    assert!(admitted >= 30 && refused >= 30, "admitted {admitted}, refused {refused}");
}
