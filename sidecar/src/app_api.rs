//! The app's localhost API: `POST /publish` with `{"channel": "...", "data": <json>}`
//! answers `{"offset": "...", "epoch": "..."}`. It binds to loopback by default because it
//! is not authenticated: only the app container in the same pod should reach it.

use std::sync::Arc;

use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::app::AppState;
use crate::http_util::{HttpResponse, json};
use crate::protocol::valid_channel;

#[derive(Deserialize)]
struct PublishBody {
    channel: String,
    data: Option<Box<RawValue>>,
}

fn problem(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    json(status, &json!({"code": code, "message": message}))
}

pub async fn handle(req: hyper::Request<Incoming>, app: Arc<AppState>) -> HttpResponse {
    if req.uri().path() != "/publish" {
        return problem(StatusCode::NOT_FOUND, "not_found", "the app API has POST /publish");
    }
    if req.method() != Method::POST {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST");
    }
    let body = match Limited::new(req.into_body(), app.config.max_frame_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return problem(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body larger than SF_MAX_FRAME_BYTES"),
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
    match app.store.publish(&body.channel, &data).await {
        Ok((offset, epoch)) => {
            app.metrics.messages_in.inc();
            json(StatusCode::OK, &json!({"channel": body.channel, "offset": offset.to_string(), "epoch": epoch}))
        }
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.to_string()),
    }
}
