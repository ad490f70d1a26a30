//! The chart's values as a user sets them, rendered by the pinned helm: each value changes
//! the objects it says it does, and a malformed one is refused by the values schema.

use std::process::Command;

use serde_json::Value;
use socketfleet_e2e::{repo_root, tool};

/// `helm template` with `sets`; the rendered objects, or helm's error text.
fn render(sets: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(tool("helm"));
    cmd.args(["template", "sf", "charts/socketfleet", "--namespace", "socketfleet-system", "--kube-version", "1.34.0"])
        .current_dir(repo_root());
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text.split("\n---").filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok()).filter(|v| v.is_object()).collect())
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

fn operator_container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment").expect("a Deployment")["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn defaults_name_the_built_image_and_make_no_pdb_for_one_replica() {
    let objects = render(&[]).expect("renders");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(operator_container(&objects)["image"], format!("socketfleet/operator:{version}"));
    assert!(find(&objects, "PodDisruptionBudget").is_none(), "one replica: a PDB would block every node drain");
    assert_eq!(find(&objects, "Deployment").expect("a Deployment")["metadata"]["name"], "sf-socketfleet");
}

#[test]
fn digest_pull_secrets_overrides_env_and_a_pdb_for_several_replicas() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let objects = render(&[
        &format!("image.digest={digest}"),
        "image.repository=registry.example.com/platform/socketfleet-operator",
        "imagePullSecrets[0].name=regcred",
        "fullnameOverride=fleet-operator",
        "extraEnv[0].name=HTTPS_PROXY",
        "extraEnv[0].value=http://proxy:3128",
        "replicaCount=2",
    ])
    .expect("renders");
    let deployment = find(&objects, "Deployment").expect("a Deployment");
    assert_eq!(deployment["metadata"]["name"], "fleet-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    let container = operator_container(&objects);
    assert_eq!(container["image"], format!("registry.example.com/platform/socketfleet-operator@{digest}"));
    let env = container["env"].as_array().expect("env");
    assert!(env.iter().any(|e| e["name"] == "HTTPS_PROXY" && e["value"] == "http://proxy:3128"), "{env:?}");
    assert_eq!(env.iter().filter(|e| e["name"] == "SF_OPERATOR_LEASE").count(), 1);
    let pdb = find(&objects, "PodDisruptionBudget").expect("a PDB for two replicas");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"]);
    // Every object carries the override, none the release-derived name.
    let names: Vec<&str> = objects.iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
    assert!(!names.contains(&"sf-socketfleet"), "{names:?}");
}

#[test]
fn name_override_changes_the_derived_names() {
    let objects = render(&["nameOverride=ws"]).expect("renders");
    assert_eq!(find(&objects, "Deployment").expect("a Deployment")["metadata"]["name"], "sf-ws");
}

#[test]
fn malformed_values_are_refused_with_the_field() {
    let err = render(&["image.digest=latest"]).expect_err("not a digest");
    assert!(err.contains("/image/digest"), "{err}");
    let err = render(&["imagePullSecrets[0].nam=regcred"]).expect_err("a pull secret needs a name");
    assert!(err.contains("imagePullSecrets"), "{err}");
}
