//! The whole reconcile pipeline (admission → generated Secrets → children → apply → observe →
//! status) against an in-memory fake API server: the writes a new fleet causes, that a
//! second pass over what was written makes none, and what an invalid fleet gets back. A
//! real kube-apiserver runs the same scenario in `e2e/`; this one runs in milliseconds and
//! shows every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use socketfleet_api::crd::SocketFleet;
use socketfleet_operator::metrics::Metrics;
use socketfleet_operator::reconcile::{Context, reconcile};

/// Objects by path (`/api/v1/namespaces/demo/services/chat`); every request as (method, path).
#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Value>,
    requests: Vec<(Method, String)>,
}

fn respond(status: u16, body: Value) -> Response<Body> {
    Response::builder().status(status).body(Body::from(serde_json::to_vec(&body).expect("json"))).expect("response")
}

fn not_found() -> Response<Body> {
    respond(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Serves GET, LIST (every object under a collection path), PATCH (stores what was sent,
/// status patches into the object's status) and POST (Events) from `store`.
fn fake_api(store: Arc<Mutex<Store>>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let body = http_body_util::BodyExt::collect(req.into_body()).await.expect("body").to_bytes();
            let mut s = store.lock().expect("store");
            s.requests.push((method.clone(), path.clone()));
            let answer = match method {
                Method::GET if s.objects.contains_key(&path) => respond(200, s.objects[&path].clone()),
                Method::GET => {
                    // `/api/v1/namespaces/<ns>/<kind>` or `/apis/<group>/<version>/namespaces/<ns>/<kind>`.
                    let parts: Vec<&str> = path.split('/').collect();
                    let core = parts.get(1) == Some(&"api");
                    if parts.len() != if core { 6 } else { 7 } {
                        not_found()
                    } else {
                        let prefix = format!("{path}/");
                        let items: Vec<Value> = s
                            .objects
                            .iter()
                            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                            .map(|(_, v)| v.clone())
                            .collect();
                        let api_version = if core { "v1".to_string() } else { format!("{}/{}", parts[2], parts[3]) };
                        respond(
                            200,
                            json!({"kind": "List", "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items}),
                        )
                    }
                }
                Method::PATCH => {
                    let sent: Value = serde_json::from_slice(&body).expect("a JSON patch body");
                    if let Some(object_path) = path.strip_suffix("/status") {
                        let obj = s.objects.entry(object_path.to_string()).or_insert_with(|| json!({}));
                        obj["status"] = sent["status"].clone();
                        let answer = obj.clone();
                        respond(200, answer)
                    } else {
                        s.objects.insert(path.clone(), sent.clone());
                        respond(200, sent)
                    }
                }
                Method::POST => respond(201, serde_json::from_slice(&body).unwrap_or(json!({}))),
                _ => not_found(),
            };
            send.send_response(answer);
        }
    });
    Client::new(service, "demo")
}

fn fleet(name: &str) -> SocketFleet {
    serde_json::from_value(json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}"), "generation": 1},
        "spec": {"auth": {"mode": "none"}}
    }))
    .expect("fleet")
}

/// A store that holds `fleet`, as the API server would.
fn store_with(fleet: &SocketFleet) -> Arc<Mutex<Store>> {
    let mut s = Store::default();
    let name = fleet.metadata.name.clone().unwrap_or_default();
    s.objects
        .insert(format!("/apis/socketfleet.io/v1alpha1/namespaces/demo/socketfleets/{name}"), serde_json::to_value(fleet).expect("json"));
    Arc::new(Mutex::new(s))
}

fn context(client: Client) -> Arc<Context> {
    Arc::new(Context::new(client, Arc::new(Metrics::new()), Reporter { controller: "test".into(), instance: None }))
}

fn writes(store: &Arc<Mutex<Store>>) -> Vec<(Method, String)> {
    store.lock().expect("store").requests.iter().filter(|(m, _)| *m != Method::GET).cloned().collect()
}

#[tokio::test]
async fn a_new_fleet_is_built_once_and_a_second_pass_writes_nothing() {
    let chat = fleet("chat");
    let store = store_with(&chat);
    let ctx = context(fake_api(store.clone()));
    reconcile(Arc::new(chat.clone()), ctx.clone()).await.expect("reconciles");
    let first = writes(&store);
    let applied: Vec<&str> = first.iter().filter(|(m, _)| *m == Method::PATCH).map(|(_, p)| p.as_str()).collect();
    for child in [
        "/api/v1/namespaces/demo/secrets/chat-redis",
        "/api/v1/namespaces/demo/secrets/chat-resume",
        "/api/v1/namespaces/demo/configmaps/chat-redis",
        "/api/v1/namespaces/demo/services/chat",
        "/api/v1/namespaces/demo/services/chat-redis-headless",
        "/apis/apps/v1/namespaces/demo/statefulsets/chat-redis",
        "/apis/apps/v1/namespaces/demo/deployments/chat-gateway",
        "/apis/policy/v1/namespaces/demo/poddisruptionbudgets/chat-gateway",
        "/apis/socketfleet.io/v1alpha1/namespaces/demo/socketfleets/chat/status",
    ] {
        assert!(applied.contains(&child), "{child} was not written: {applied:?}");
    }
    // The second pass sees what the first wrote (the fleet with its status): no write at all.
    let written = store.lock().expect("store").objects["/apis/socketfleet.io/v1alpha1/namespaces/demo/socketfleets/chat"].clone();
    let mut again = chat;
    again.status = serde_json::from_value(written["status"].clone()).expect("a status");
    let before = first.len();
    reconcile(Arc::new(again), ctx).await.expect("reconciles");
    let second: Vec<_> = writes(&store).into_iter().skip(before).collect();
    assert!(second.is_empty(), "a settled fleet wrote {second:?}");
}

#[tokio::test]
async fn an_invalid_fleet_gets_a_sentence_in_its_status_and_no_children() {
    let long = fleet(&"a".repeat(socketfleet_api::crd::MAX_NAME_LEN + 1));
    let store = store_with(&long);
    let ctx = context(fake_api(store.clone()));
    let err = reconcile(Arc::new(long), ctx).await.expect_err("refused");
    assert_eq!(err.reason(), "InvalidSpec");
    let all = writes(&store);
    assert!(all.iter().all(|(_, p)| p.contains("/socketfleets/") || p.contains("/events")), "no child written: {all:?}");
    let status = store.lock().expect("store").objects.values().find_map(|o| o.get("status").cloned()).expect("a status written");
    let degraded = status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Degraded").cloned()).expect("Degraded");
    assert_eq!((degraded["status"].as_str(), degraded["reason"].as_str()), (Some("True"), Some("InvalidSpec")));
    let message = degraded["message"].as_str().unwrap_or("");
    assert!(message.contains("metadata.name must be at most 43 characters") && !message.contains("Status {"), "{message}");
    assert!(all.iter().any(|(m, p)| *m == Method::POST && p.contains("events")), "a Warning Event: {all:?}");
}
