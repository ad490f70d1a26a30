//! One HTTP/1 request to an admin endpoint (the sidecar's `/status`, `/drain`, `/ready`, its
//! app API; the operator's `/metrics`), bounded in time and in body size, on hyper's client
//! connection. [`blocking`] is the same request for synchronous callers (tests that run
//! outside an async runtime); [`prometheus_value`] reads one sample of a text exposition.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// The largest answer read; admin bodies are small.
const MAX_BODY: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no answer from {addr} within {limit:?}")]
    Timeout { addr: String, limit: Duration },
    #[error("{addr}: {message}")]
    Transport { addr: String, message: String },
    #[error("{addr}{path} answered {status}: {body}")]
    Status { addr: String, path: String, status: u16, body: String },
    #[error("{addr}{path} answered JSON that does not fit: {message}")]
    Json { addr: String, path: String, message: String },
}

/// A status and a body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` to `addr` (`host:port`) and reads the whole answer within `limit`.
pub async fn request(addr: &str, method: Method, path: &str, limit: Duration) -> Result<Reply, HttpError> {
    send(addr, method, path, None, limit).await
}

/// [`request`] with a JSON body.
pub async fn send(addr: &str, method: Method, path: &str, json: Option<&str>, limit: Duration) -> Result<Reply, HttpError> {
    let transport = |e: &dyn std::fmt::Display| HttpError::Transport { addr: addr.to_string(), message: e.to_string() };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| transport(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| transport(&e))?;
        // The connection task ends when the sender is dropped at the end of this exchange.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, addr);
        if json.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(json.unwrap_or_default().to_string()))).map_err(|e| transport(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| transport(&*e))?.to_bytes();
        Ok(Reply { status, body })
    };
    tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| Err(HttpError::Timeout { addr: addr.to_string(), limit }))
}

/// [`send`] for a synchronous caller. The request runs on a thread of its own with a
/// small runtime, so this works inside or outside an async runtime; inside one it blocks the
/// calling task's worker until the answer (or `limit`), so async code awaits [`send`].
pub fn blocking(addr: &str, method: Method, path: &str, json: Option<&str>, limit: Duration) -> Result<Reply, HttpError> {
    let transport = |message: String| HttpError::Transport { addr: addr.to_string(), message };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| transport(e.to_string()))?;
                runtime.block_on(send(addr, method, path, json, limit))
            })
            .join()
            .unwrap_or_else(|_| Err(transport("the request thread panicked".into())))
    })
}

/// The value of the sample `name` (exactly, labels included when given) in a Prometheus
/// text exposition.
pub fn prometheus_value(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' '))).and_then(|v| v.trim().parse().ok())
}

/// The sum of every sample of the family `family` whose labels pass `keep`.
pub fn prometheus_sum(body: &str, family: &str, keep: impl Fn(&str) -> bool) -> f64 {
    body.lines()
        .filter_map(|l| l.strip_prefix(family))
        .filter(|rest| rest.starts_with('{') || rest.starts_with(' '))
        .filter(|rest| keep(rest))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET path` expecting 2xx and a JSON body of type `T`.
pub async fn get_json<T: DeserializeOwned>(addr: &str, path: &str, limit: Duration) -> Result<T, HttpError> {
    json_of(addr, path, request(addr, Method::GET, path, limit).await?)
}

/// `POST path` (empty body) expecting 2xx and a JSON body of type `T`.
pub async fn post_json<T: DeserializeOwned>(addr: &str, path: &str, limit: Duration) -> Result<T, HttpError> {
    json_of(addr, path, request(addr, Method::POST, path, limit).await?)
}

fn json_of<T: DeserializeOwned>(addr: &str, path: &str, reply: Reply) -> Result<T, HttpError> {
    if !(200..300).contains(&reply.status) {
        return Err(HttpError::Status { addr: addr.into(), path: path.into(), status: reply.status, body: reply.text() });
    }
    serde_json::from_slice(&reply.body).map_err(|e| HttpError::Json { addr: addr.into(), path: path.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_by_name_and_family() {
        let body = "# HELP x\nsf_up 1\nsf_upper 7\nsf_writes_total{kind=\"Lease\"} 4\nsf_writes_total{kind=\"Service\"} 2\n";
        assert_eq!(prometheus_value(body, "sf_up"), Some(1.0));
        assert_eq!(prometheus_value(body, "sf_missing"), None);
        assert_eq!(prometheus_sum(body, "sf_writes_total", |l| !l.contains("Lease")), 2.0);
    }

    #[test]
    fn blocking_requests_outside_a_runtime() {
        let err = blocking("127.0.0.1:1", Method::GET, "/", None, Duration::from_secs(1)).expect_err("nobody on port 1");
        assert!(matches!(err, HttpError::Transport { .. } | HttpError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn blocking_requests_inside_a_runtime_do_not_panic() {
        let err = blocking("127.0.0.1:1", Method::GET, "/", None, Duration::from_secs(1)).expect_err("nobody on port 1");
        assert!(matches!(err, HttpError::Transport { .. } | HttpError::Timeout { .. }), "{err}");
    }
    use crate::http_server::{json, serve};
    use tokio::sync::watch;

    #[tokio::test]
    async fn talks_to_the_accept_loop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (stop, stopped) = watch::channel(false);
        let server =
            tokio::spawn(serve(listener, stopped, Duration::from_secs(5), |req: hyper::Request<hyper::body::Incoming>| async move {
                match (req.method().as_str(), req.uri().path()) {
                    ("GET", "/status") => json(http::StatusCode::OK, &serde_json::json!({"connections": 3})),
                    _ => json(http::StatusCode::NOT_FOUND, &serde_json::json!({"error": "no"})),
                }
            }));
        let v: serde_json::Value = get_json(&addr, "/status", Duration::from_secs(3)).await.expect("answer");
        assert_eq!(v["connections"], 3);
        let err = post_json::<serde_json::Value>(&addr, "/status", Duration::from_secs(3)).await.expect_err("404");
        assert!(matches!(err, HttpError::Status { status: 404, .. }), "{err}");
        let posted = send(&addr, Method::POST, "/status", Some("{}"), Duration::from_secs(3)).await.expect("an answer");
        assert_eq!(posted.status, 404);
        let _ = stop.send(true);
        let _ = server.await;
        let err = request(&addr, Method::GET, "/status", Duration::from_secs(1)).await.expect_err("nobody listens");
        assert!(matches!(err, HttpError::Transport { .. } | HttpError::Timeout { .. }), "{err}");
    }
}
