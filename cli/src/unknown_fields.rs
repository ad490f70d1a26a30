//! Fields the CRD's schema does not know, found the way the API server's strict field
//! validation finds them (`kubectl apply` refuses `spec.gateway.replicaz` with
//! `unknown field "spec.gateway.replicaz"`), so that `socketfleet local` never runs a file
//! with a mistyped setting silently ignored.
//!
//! The walk follows the generated `openAPIV3Schema`: `properties` name the known keys,
//! `additionalProperties` describes maps (labels, resource lists), `items` arrays. The
//! object's own envelope (`apiVersion`, `kind`, `metadata`) is Kubernetes', checked here
//! against `ObjectMeta`'s field names.

use serde_json::{Map, Value};

/// `ObjectMeta`'s fields: what `metadata` may hold.
const OBJECT_META: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

/// One message per unknown field: `unknown field "spec.gateway.replicaz" (did you mean
/// "replicas"?)`, sorted by path.
pub fn find(object: &Value, schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(map) = object.as_object() else { return found };
    let top = ["apiVersion", "kind", "metadata"];
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(meta) = value.as_object() {
                    for k in meta.keys().filter(|k| !OBJECT_META.contains(&k.as_str())) {
                        found.push(message(&format!("metadata.{k}"), k, OBJECT_META.iter().copied()));
                    }
                }
            }
            _ => match schema["properties"].get(key) {
                Some(s) => walk(value, s, key, &mut found),
                None => {
                    let known = schema["properties"].as_object().map(Map::keys).into_iter().flatten().map(String::as_str);
                    found.push(message(key, key, known.chain(top)));
                }
            },
        }
    }
    found.sort();
    found
}

fn walk(value: &Value, schema: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (key, v) in map {
                    let here = format!("{path}.{key}");
                    match props.get(key) {
                        Some(s) => walk(v, s, &here, found),
                        None => found.push(message(&here, key, props.keys().map(String::as_str))),
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                for (key, v) in map {
                    walk(v, &schema["additionalProperties"], &format!("{path}.{key}"), found);
                }
            }
            // Neither: a free-form object (`x-kubernetes-preserve-unknown-fields`), or a
            // type the schema does not describe field by field; the API server keeps it too.
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &schema["items"], &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn message<'a>(path: &str, key: &str, known: impl Iterator<Item = &'a str>) -> String {
    match nearest(key, known) {
        Some(near) => format!("unknown field \"{path}\" (did you mean \"{near}\"?)"),
        None => format!("unknown field \"{path}\""),
    }
}

/// The known name a typo most likely meant: same letters in another case, or a few edits (a swap of two neighbours is one)
/// away (at most one per three characters, and at most 3).
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = key.to_lowercase();
    let limit = (key.chars().count() / 3).clamp(1, 3);
    known.map(|k| (strsim::osa_distance(&lower, &k.to_lowercase()), k)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        socketfleet_api::admission::schema()
    }

    #[test]
    fn a_mistyped_field_is_named_with_its_path_and_the_name_it_likely_meant() {
        let fleet = json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet", "metadata": {"name": "x"},
            "spec": {"gateway": {"replicaz": 3}}});
        assert_eq!(find(&fleet, &schema()), vec![r#"unknown field "spec.gateway.replicaz" (did you mean "replicas"?)"#]);
    }

    #[test]
    fn every_unknown_field_is_reported_in_maps_arrays_metadata_and_at_the_top() {
        let fleet = json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
            "metadata": {"name": "x", "lables": {"a": "b"}},
            "spek": {},
            "spec": {"redis": {"Shards": 3, "persistence": {"zzzzzzzz": true}},
                     "gateway": {"podTemplate": {"tolerations": [{"key": "k", "operatr": "Exists"}]}}}});
        let found = find(&fleet, &schema());
        assert_eq!(
            found,
            vec![
                r#"unknown field "metadata.lables" (did you mean "labels"?)"#,
                r#"unknown field "spec.gateway.podTemplate.tolerations[0].operatr" (did you mean "operator"?)"#,
                r#"unknown field "spec.redis.Shards" (did you mean "shards"?)"#,
                r#"unknown field "spec.redis.persistence.zzzzzzzz""#,
                r#"unknown field "spek" (did you mean "spec"?)"#,
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn known_fields_maps_and_free_form_values_pass() {
        let fleet = json!({"apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
            "metadata": {"name": "x", "labels": {"any-label": "v"}, "annotations": {"a/b": "c"}},
            "spec": {"gateway": {"replicas": {"min": 2, "max": 4}, "podTemplate": {"nodeSelector": {"disk": "ssd"}}}}});
        assert_eq!(find(&fleet, &schema()), Vec::<String>::new());
    }
}
