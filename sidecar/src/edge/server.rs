//! The client-facing listener: `GET /ws` upgrades to a WebSocket (RFC 6455).
//!
//! Before upgrading it checks the handshake headers, the connection cap and the token,
//! so refused clients get a plain HTTP status with a reason instead of a dead socket.
//! [`Edge`] is what this listener and every connection share.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Method, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::delivery::drain::Drain;
use crate::delivery::hub::Hub;
use crate::delivery::session::Sessions;
use crate::edge::auth::Authenticator;
use crate::edge::resume_token::ResumeKeys;
use crate::edge::{connection, protocol, socket};
use crate::metrics::Metrics;
use crate::store::channels::ChannelStore;
use crate::store::presence::Presence;
use socketfleet_api::settings::SidecarSettings as Config;
use socketfleet_plumbing::http_server::{HttpResponse, respond, text};

/// What the client listener and its connections share, one per process (`app.rs` builds
/// it). The admin and app listeners get narrower handles: `admin::Admin`, `app_api::AppApi`.
pub struct Edge {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub store: Arc<ChannelStore>,
    pub presence: Arc<Presence>,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    pub conn_limit: Arc<Semaphore>,
    pub next_conn_id: AtomicU64,
    pub drain: Arc<Drain>,
    pub resume_keys: ResumeKeys,
    pub sessions: Arc<Sessions>,
    /// Frames are written by the task that offers them when the socket is idle
    /// (`send_queue.rs`): on a runtime of one worker (`app.rs`); else each connection's
    /// writer task writes.
    pub direct_writes: bool,
    /// Turns true when the client listeners stop accepting (during a drain).
    pub shutdown: watch::Receiver<bool>,
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

/// A query parameter's value percent-decoded: a client may encode every character of a
/// token (`%2E` for `.`), as URL encoders that escape all but letters and digits do.
fn query_value(query: &str, name: &str) -> Option<String> {
    query_param(query, name).map(|raw| percent_decode_str(raw).decode_utf8_lossy().into_owned())
}

fn header_has(req: &hyper::Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Small buffers: most connections are idle most of the time, and memory per idle
/// connection is what bounds a pod (see bench/RESULTS.md).
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 << 20)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

pub async fn handle(mut req: hyper::Request<Incoming>, edge: Arc<Edge>) -> HttpResponse {
    if req.uri().path() != "/ws" {
        return text(StatusCode::NOT_FOUND, "not found: connect to /ws\n");
    }
    if req.method() != Method::GET || !header_has(&req, header::UPGRADE, "websocket") || !header_has(&req, header::CONNECTION, "upgrade") {
        return text(StatusCode::UPGRADE_REQUIRED, "a WebSocket upgrade (GET /ws) is required\n");
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13\n");
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    // During the accept grace a draining pod still takes clients (its endpoint may still be
    // routed here); they are told to move with the others. Refused only once it stopped.
    if *edge.shutdown.borrow() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining: connect to another instance\n");
    }
    let Ok(permit) = edge.conn_limit.clone().try_acquire_owned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "connection limit reached\n");
    };
    let query = req.uri().query().unwrap_or("");
    if let Some(v) = query_param(query, "v").filter(|v| *v != "1") {
        return text(StatusCode::BAD_REQUEST, format!("protocol version {v} is not supported; this server speaks v=1\n"));
    }
    let conn_id = edge.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let identity = match edge.auth.authenticate(query_value(query, "token").as_deref(), conn_id) {
        Ok(id) => id,
        Err(e) => return text(StatusCode::UNAUTHORIZED, format!("{e}\n")),
    };
    let resume = query_value(query, "resume");
    let positions = match query_value(query, "since") {
        None => HashMap::new(),
        Some(json) => match protocol::parse_positions(&json, edge.config.max_subscriptions) {
            Ok(p) => p,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        },
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let config = ws_config(edge.config.max_frame_bytes);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let Ok((io, raw)) = socket::from_upgraded(upgraded) else {
                    tracing::error!("an upgraded connection is not a TCP socket; closed");
                    return;
                };
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                // A task of its own, so that this one (with the upgrade's state) ends now
                // instead of living, and weighing, as long as the connection.
                tokio::spawn(connection::serve(ws, raw, edge, identity, conn_id, connection::Resume { token: resume, positions }, permit));
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut resp = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let h = resp.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_parameters() {
        assert_eq!(query_param("token=abc&v=1", "token"), Some("abc"));
        assert_eq!(query_param("token=abc&v=1", "v"), Some("1"));
        assert_eq!(query_param("tokens=x", "token"), None);
        assert_eq!(query_param("", "token"), None);
    }
}
