//! Every file in `examples/` parses into the operator's types, passes the CRD's rules and
//! builds the children that mode needs.

use std::path::PathBuf;

use kube::ResourceExt;
use serde::Deserialize;
use socketfleet_api::admission::validate;
use socketfleet_api::crd::SocketFleet;
use socketfleet_operator::children::{Generated, build};

fn example(name: &str) -> SocketFleet {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // A file may carry more than the fleet (hpa.yaml, keda.yaml): take the SocketFleet.
    let doc = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{name}: {e}")))
        .find(|d| d["kind"].as_str() == Some("SocketFleet"))
        .unwrap_or_else(|| panic!("{name}: no SocketFleet"));
    let mut fleet: SocketFleet = serde_yaml::from_value(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
    fleet.metadata.namespace = Some("demo".into());
    fleet.metadata.uid = Some("uid".into());
    fleet
}

fn generated() -> Generated {
    Generated { redis_password: "p".into(), resume_key: "r".into(), jwt_secret: "j".into() }
}

fn names(fleet: &SocketFleet) -> Vec<String> {
    build(fleet, &generated()).names().into_iter().map(|(kind, name)| format!("{kind}/{name}")).collect()
}

#[test]
fn every_example_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            validate(&example(&name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 5, "minimal, chat, checkboxes, sentinel, external");
}

#[test]
fn each_example_builds_what_its_mode_needs() {
    let chat = example("chat.yaml");
    assert_eq!(
        names(&chat),
        [
            "Secret/chat-resume",
            "Secret/chat-redis",
            "Secret/chat-jwt",
            "ConfigMap/chat-redis",
            "Service/chat-redis-headless",
            "Service/chat-redis",
            "Service/chat",
            "StatefulSet/chat-redis",
            "Deployment/chat-gateway",
            "PodDisruptionBudget/chat-redis",
            "PodDisruptionBudget/chat-gateway",
        ]
    );
    let c = build(&chat, &generated());
    assert_eq!(c.stateful_sets[0].spec.as_ref().and_then(|s| s.replicas), Some(6));
    assert_eq!(c.deployments[0].spec.as_ref().and_then(|s| s.replicas), Some(3));

    let sentinel = example("sentinel.yaml");
    let n = names(&sentinel);
    assert!(
        n.contains(&"StatefulSet/sentinel-chat-sentinel".to_string()) && n.contains(&"Service/sentinel-chat-sentinel".to_string()),
        "{n:?}"
    );
    let pod = build(&sentinel, &generated()).deployments.remove(0).spec.and_then(|s| s.template.spec).expect("pod");
    assert_eq!(pod.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["sidecar", "app"]);

    let external = example("external.yaml");
    assert_eq!(
        names(&external),
        ["Secret/external-resume", "Service/external", "Deployment/external-gateway", "PodDisruptionBudget/external-gateway"]
    );

    let checkboxes = example("checkboxes.yaml");
    assert!(!names(&checkboxes).iter().any(|n| n.ends_with("-jwt")), "auth none: no JWT secret");
    assert_eq!(example("minimal.yaml").name_any(), "minimal");
}
