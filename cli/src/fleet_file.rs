//! Reading a `SocketFleet` YAML file: the operator's own types and CEL rules, so a file
//! that `socketfleet local` accepts is one the API server accepts, with the same messages.

use std::path::Path;

use serde::Deserialize;
use socketfleet_api::admission;
use socketfleet_api::crd::SocketFleet;

use crate::unknown_fields;

/// Why a fleet file cannot be used; each reads as one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum FleetFileError {
    #[error("{0}")]
    Read(String),
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Kind(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parses and validates the text of a fleet file (`name` is used in messages).
pub fn parse(name: &str, text: &str) -> Result<SocketFleet, FleetFileError> {
    let empty = || {
        FleetFileError::Kind(format!(
            "{name} is empty; a fleet file holds a SocketFleet (apiVersion: socketfleet.io/v1alpha1, kind: SocketFleet; see examples/)"
        ))
    };
    // A file may carry more than the fleet (examples/hpa.yaml has its HPA): the SocketFleet
    // is the document of that kind, or the only document.
    let mut docs = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc).map_err(|e| FleetFileError::Parse(format!("{name} is not valid YAML: {e}")))?;
        if !value.is_null() {
            docs.push((index, value));
        }
    }
    let fleets: Vec<&(usize, serde_json::Value)> = docs.iter().filter(|(_, d)| d["kind"] == "SocketFleet").collect();
    let (index, value) = match (fleets.as_slice(), docs.as_slice()) {
        ([one], _) => (*one).clone(),
        ([], [only]) => only.clone(),
        ([], []) => return Err(empty()),
        ([], _) => return Err(FleetFileError::Kind(format!("{name} has {} documents and no SocketFleet among them", docs.len()))),
        (many, _) => return Err(FleetFileError::Kind(format!("{name} has {} SocketFleets; local mode runs one per file", many.len()))),
    };
    let (api_version, kind) = (value["apiVersion"].as_str().unwrap_or(""), value["kind"].as_str().unwrap_or(""));
    if api_version != "socketfleet.io/v1alpha1" || kind != "SocketFleet" {
        let what = if value.is_object() { format!("a {kind:?} of {api_version:?}") } else { format!("not an object ({value})") };
        return Err(FleetFileError::Kind(format!(
            "{name} is {what}; expected kind: SocketFleet, apiVersion: socketfleet.io/v1alpha1 (see examples/)"
        )));
    }
    // As the API server's strict field validation (kubectl's default) does: a mistyped
    // field is refused, never silently left at its default.
    let unknown = unknown_fields::find(&value, &admission::schema());
    if !unknown.is_empty() {
        return Err(FleetFileError::Invalid(format!("{name}: {}", unknown.join("; "))));
    }
    // Types first (they name the field), then the CRD's rules.
    let fleet: SocketFleet = serde_json::from_value(value.clone()).map_err(|e| {
        // The same document read again from the YAML, so that the message names the
        // field's path, line and column.
        let located = serde_yaml::Deserializer::from_str(text).nth(index).map(SocketFleet::deserialize);
        let e = match located {
            Some(Err(located)) => located.to_string(),
            _ => e.to_string(),
        };
        FleetFileError::Parse(format!("{name} is not a valid SocketFleet: {e}"))
    })?;
    if let Err(invalid) = admission::check(&value, None) {
        return Err(FleetFileError::Invalid(format!("{name}: {invalid}")));
    }
    Ok(fleet)
}

/// Reads, parses and validates a fleet file.
pub fn load(path: &Path) -> Result<SocketFleet, FleetFileError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FleetFileError::Read(format!("cannot read {name}: {e}")))?;
    parse(&name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_file_parses_with_defaults() {
        let f = parse("f.yaml", "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: x}\nspec: {}\n").expect("valid");
        assert_eq!(f.spec.gateway.replicas.min, 2);
    }

    #[test]
    fn a_file_with_more_than_the_fleet_gives_its_fleet() {
        let text = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n---\n\
                    apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: x}\nspec: {}\n";
        assert_eq!(parse("f.yaml", text).expect("the fleet").metadata.name.as_deref(), Some("x"));
        let two = "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: a}\n---\n\
                   apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: b}\n";
        assert!(parse("f.yaml", two).expect_err("two fleets").to_string().contains("2 SocketFleets"));
        let none = "kind: A\n---\nkind: B\n";
        assert!(parse("f.yaml", none).expect_err("no fleet").to_string().contains("no SocketFleet"));
    }

    #[test]
    fn bad_files_get_one_clear_line() {
        let cases = [
            ("spec: [unclosed", "is not valid YAML"),
            ("apiVersion: v1\nkind: Pod\n", "expected kind: SocketFleet"),
            (
                "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: x}\nspec: {gateway: {replicas: {min: 5, max: 1}}}\n",
                "replicas.min must not be greater than replicas.max",
            ),
            (
                "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: x}\nspec: {redis: {shards: many}}\n",
                "not a valid SocketFleet: spec.redis.shards: invalid type: string \"many\", expected i32 at line 4 column",
            ),
            ("", "f.yaml is empty"),
            ("# only a comment\n", "f.yaml is empty"),
            ("just words", "is not an object"),
            ("apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata:\n\tname: x\n", "line 4 column"),
            (
                "apiVersion: socketfleet.io/v1alpha1\nkind: SocketFleet\nmetadata: {name: x}\nspec: {gateway: {replicaz: 3}}\n",
                "unknown field \"spec.gateway.replicaz\" (did you mean \"replicas\"?)",
            ),
        ];
        for (text, want) in cases {
            let e = parse("f.yaml", text).expect_err(text).to_string();
            assert!(e.contains(want) && e.starts_with("f.yaml") && !e.contains('\n'), "{text}: {e}");
        }
    }
}
