//! The app's localhost API. It binds to loopback by default because it is not
//! authenticated: only the app container in the same pod should reach it.
//!
//! - `POST /publish` with `{"channel": "...", "data": <json>}` (optional `"pid"`, a publish
//!   id that makes a retry safe) answers `{"offset": "...", "epoch": "...", "repeated":
//!   bool}`; failures are `unavailable` (503, not published), `unconfirmed` (504, may be
//!   published: retry with the same pid) or `not_durable` (503, published, no replica);
//! - `PUT /sessions/{sid}/state` with any JSON sets the custom state of a session connected
//!   to this pod; it is written to Redis before the answer and restored on resume;
//! - `GET /sessions/{sid}` returns the stored session (user, subscriptions with positions,
//!   state) of any session of the fleet.

use std::sync::Arc;

use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::delivery::session::{SessionError, Sessions};
use crate::edge::dispatch::publish_error;
use crate::edge::protocol::{ErrorCode, pid_rule, valid_channel, valid_pid};
use crate::metrics::Metrics;
use crate::store::channels::ChannelStore;
use socketfleet_plumbing::http_server::{HttpResponse, json};

#[derive(Deserialize)]
struct PublishBody {
    channel: String,
    data: Option<Box<RawValue>>,
    /// A publish id, as on the WebSocket: a retry of it is stored once.
    #[serde(default)]
    pid: Option<String>,
}

fn problem(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    json(status, &json!({"code": code, "message": message}))
}

/// What the app API reads and writes.
pub struct AppApi {
    pub store: Arc<ChannelStore>,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<Metrics>,
    /// The largest custom session state accepted.
    pub session_state_max: usize,
    /// The largest publish body accepted (a client frame's limit).
    pub max_frame_bytes: usize,
}

const ROUTES: &str = "the app API has POST /publish, PUT /sessions/{sid}/state and GET /sessions/{sid}";

pub async fn handle(req: hyper::Request<Incoming>, app: Arc<AppApi>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    match (segments.as_slice(), method) {
        (["publish"], Method::POST) => publish(req, &app).await,
        (["sessions", sid, "state"], Method::PUT) => set_state(req, &app, sid).await,
        (["sessions", sid], Method::GET) => get_session(&app, sid).await,
        (["publish"], _) => problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST /publish"),
        (["sessions", _, "state"], _) => problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use PUT /sessions/{sid}/state"),
        (["sessions", _], _) => problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET /sessions/{sid}"),
        _ => problem(StatusCode::NOT_FOUND, "not_found", ROUTES),
    }
}

async fn body(req: hyper::Request<Incoming>, limit: usize) -> Result<bytes::Bytes, HttpResponse> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(problem(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &format!("the body is larger than {limit} bytes"))),
    }
}

/// Session ids are what the sidecar issues: 32 hex digits.
fn valid_session_id(sid: &str) -> bool {
    sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn set_state(req: hyper::Request<Incoming>, app: &AppApi, sid: &str) -> HttpResponse {
    if !valid_session_id(sid) {
        return problem(StatusCode::BAD_REQUEST, "bad_session", "session ids are the 32 hex digits of `welcome.session`");
    }
    let body = match body(req, app.session_state_max).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let state: Box<RawValue> = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "bad_request", &format!("the state must be JSON: {e}")),
    };
    match app.sessions.set_state(sid, state).await {
        Ok(()) => json(StatusCode::OK, &json!({"session": sid})),
        Err(e @ SessionError::NotHere(_)) => problem(StatusCode::NOT_FOUND, "not_connected", &e.to_string()),
        Err(e @ SessionError::TooLarge(..)) => problem(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &e.to_string()),
        Err(e @ SessionError::Superseded) => problem(StatusCode::CONFLICT, "superseded", &e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.to_string()),
    }
}

async fn get_session(app: &AppApi, sid: &str) -> HttpResponse {
    if !valid_session_id(sid) {
        return problem(StatusCode::BAD_REQUEST, "bad_session", "session ids are the 32 hex digits of `welcome.session`");
    }
    match app.sessions.load(sid).await {
        Ok(Some(doc)) => json(StatusCode::OK, &json!({"session": sid, "connectedHere": app.sessions.local(sid).is_some(), "stored": doc})),
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found", &format!("no stored session {sid} (never checkpointed, or expired)")),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.to_string()),
    }
}

async fn publish(req: hyper::Request<Incoming>, app: &AppApi) -> HttpResponse {
    let body = match body(req, app.max_frame_bytes).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let body: PublishBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "bad_request", &format!("expected {{\"channel\":..., \"data\":...}}: {e}")),
    };
    if !valid_channel(&body.channel) {
        return problem(StatusCode::BAD_REQUEST, "bad_channel", "channel names are 1-128 characters of A-Z a-z 0-9 : _ - . @ /");
    }
    let Some(data) = body.data else {
        return problem(StatusCode::BAD_REQUEST, "bad_request", "\"data\" is required (any JSON value but null)");
    };
    if body.pid.as_deref().is_some_and(|p| !valid_pid(p)) {
        return problem(StatusCode::BAD_REQUEST, "bad_request", &pid_rule());
    }
    match app.store.publish(&body.channel, &data, body.pid.as_deref()).await {
        Ok(p) => {
            if !p.repeated {
                app.metrics.messages_in.inc();
            }
            json(
                StatusCode::OK,
                &json!({"channel": body.channel, "offset": p.offset.to_string(), "epoch": p.epoch, "repeated": p.repeated}),
            )
        }
        // The WebSocket's answer; an unknown outcome is a gateway timeout, the rest 503.
        Err(e) => {
            let answer = publish_error(None, &e);
            let status = if answer.code == ErrorCode::Unconfirmed { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::SERVICE_UNAVAILABLE };
            problem(status, answer.code.as_str(), &answer.message)
        }
    }
}
