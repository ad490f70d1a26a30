//! The exact requests of the apply step, against a fake API server (`tower-test`): the
//! one thing a real API server cannot show directly is that a settled child costs a read
//! and no write. (Everything else is tested against a real kube-apiserver in `e2e/`.)

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::client::Body;
use kube::{Api, Client};
use socketfleet_api::crd::SocketFleet;
use socketfleet_operator::apply::{HASH_ANNOTATION, apply_one};
use socketfleet_operator::children::{Generated, build};
use socketfleet_operator::metrics::Metrics;

fn fleet() -> SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "chat", "namespace": "demo", "uid": "u1"}, "spec": {}
    }))
    .expect("fleet")
}

fn config_map() -> ConfigMap {
    build(&fleet(), &Generated { redis_password: "p".into(), resume_key: "r".into(), jwt_secret: "j".into() }).config_maps.remove(0)
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Body> {
    Response::builder().status(status).body(Body::from(serde_json::to_vec(&body).expect("json"))).expect("response")
}

/// Runs `apply_one` against a fake server that answers the GET with `live`; returns every
/// request as (method, path?query) and whether apply reported a write.
async fn requests_for(live: Option<ConfigMap>) -> (Vec<(Method, String)>, bool) {
    let (requests, result) = try_requests_for(live).await;
    (requests, result.expect("apply"))
}

async fn try_requests_for(live: Option<ConfigMap>) -> (Vec<(Method, String)>, Result<bool, socketfleet_operator::error::Error>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "demo");
    let api: Api<ConfigMap> = Api::namespaced(client, "demo");
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let method = req.method().clone();
            seen.push((method.clone(), target));
            // The API server answers an apply with the object as it now is: what was sent.
            let sent = http_body_util::BodyExt::collect(req.into_body()).await.expect("body").to_bytes();
            let answer = match (&method, &live) {
                (&Method::GET, Some(cm)) => json_response(200, serde_json::to_value(cm).expect("json")),
                (&Method::GET, None) => json_response(
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
                _ => json_response(200, serde_json::from_slice(&sent).expect("a JSON body")),
            };
            send.send_response(answer);
        }
        seen
    });
    let wrote = apply_one(&api, config_map(), "u1", &Metrics::new()).await;
    drop(api);
    (server.await.expect("server"), wrote)
}

#[tokio::test]
async fn a_new_child_is_created_with_server_side_apply() {
    let (requests, wrote) = requests_for(None).await;
    assert!(wrote);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].0, Method::GET);
    assert_eq!(requests[1].0, Method::PATCH);
    assert!(requests[1].1.contains("fieldManager=socketfleet-operator") && requests[1].1.contains("force=true"), "{requests:?}");
}

/// The hash annotation `apply_one` puts on the object it sends.
async fn applied_hash() -> String {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api: Api<ConfigMap> = Api::namespaced(Client::new(service, "demo"), "demo");
    let capture = tokio::spawn(async move {
        let mut hash = String::new();
        while let Some((req, send)) = handle.next_request().await {
            if req.method() == Method::PATCH {
                let body = http_body_util::BodyExt::collect(req.into_body()).await.expect("body").to_bytes();
                let sent: ConfigMap = serde_json::from_slice(&body).expect("a ConfigMap");
                hash = sent.metadata.annotations.and_then(|a| a.get(HASH_ANNOTATION).cloned()).unwrap_or_default();
                send.send_response(json_response(200, serde_json::to_value(config_map()).expect("json")));
            } else {
                send.send_response(json_response(
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "code": 404, "reason": "NotFound"}),
                ));
            }
        }
        hash
    });
    apply_one(&api, config_map(), "u1", &Metrics::new()).await.expect("apply");
    drop(api);
    capture.await.expect("capture")
}

#[tokio::test]
async fn a_settled_child_costs_one_read_and_no_write() {
    // What the API server holds after the first apply: the object with its hash.
    let hash = applied_hash().await;
    assert_eq!(hash.len(), 24);
    let mut live = config_map();
    live.metadata.annotations.get_or_insert_default().insert(HASH_ANNOTATION.into(), hash);
    let (requests, wrote) = requests_for(Some(live)).await;
    assert!(!wrote);
    assert_eq!(requests.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(), [Method::GET], "only a read");
}

/// What the API server holds after the first apply, with `edit` applied by a person.
async fn live_edited(edit: impl FnOnce(&mut ConfigMap)) -> ConfigMap {
    let mut live = config_map();
    live.metadata.annotations.get_or_insert_default().insert(HASH_ANNOTATION.into(), applied_hash().await);
    edit(&mut live);
    live
}

#[tokio::test]
async fn a_hand_edit_of_an_owned_field_is_put_back_even_with_the_same_hash() {
    let live = live_edited(|cm| {
        for v in cm.data.get_or_insert_default().values_mut() {
            v.push_str("\n# edited by hand");
        }
    })
    .await;
    let (requests, wrote) = requests_for(Some(live)).await;
    assert!(wrote, "{requests:?}");
    assert_eq!(requests.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(), [Method::GET, Method::PATCH]);
    // A field someone else added (a label of their own) is theirs: no write.
    let labelled = live_edited(|cm| {
        cm.metadata.labels.get_or_insert_default().insert("team".into(), "chat".into());
    })
    .await;
    assert!(!requests_for(Some(labelled)).await.1, "another manager's label is not drift");
}

#[tokio::test]
async fn a_child_controlled_by_another_fleet_is_reported_not_taken() {
    let live = live_edited(|cm| {
        for o in cm.metadata.owner_references.iter_mut().flatten() {
            o.uid = "other-fleet".into();
            o.name = "chat-redis".into();
        }
    })
    .await;
    let (requests, result) = try_requests_for(Some(live)).await;
    let err = result.expect_err("a conflict");
    assert_eq!(err.reason(), "NameConflict");
    assert!(err.to_string().contains("ConfigMap chat-redis is already controlled by SocketFleet chat-redis"), "{err}");
    assert_eq!(requests.len(), 1, "only the read: {requests:?}");
}
