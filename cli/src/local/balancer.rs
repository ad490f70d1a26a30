//! The local load balancer on one port: `/ws` is proxied (raw TCP, after the request head)
//! to a sidecar that is not draining, round-robin, or to the one named by `?via=<name>`;
//! everything else is the demo pages, `/fleet.json` (what runs) and, when the fleet uses
//! a generated HS256 secret, `/token?user=<name>` (demo tokens; local mode only).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::redis::NodeView;

/// A sidecar as the balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub ws_port: u16,
    pub admin_port: u16,
    pub api_port: u16,
    pub draining: bool,
    /// Its process id (for a test driver or a benchmark: signals, memory, CPU).
    pub pid: Option<u32>,
}

#[derive(Default)]
pub struct Backends {
    list: Mutex<Vec<Backend>>,
    next: AtomicUsize,
    /// The Redis processes, shown in `/fleet.json`.
    redis: Mutex<Vec<NodeView>>,
}

impl Backends {
    pub fn set(&self, backends: Vec<Backend>) {
        *self.list.lock().unwrap_or_else(|p| p.into_inner()) = backends;
    }

    pub fn set_redis(&self, nodes: Vec<NodeView>) {
        *self.redis.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    fn redis(&self) -> Vec<NodeView> {
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn snapshot(&self) -> Vec<Backend> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The backend named `via`, else the next one that is not draining.
    pub fn pick(&self, via: Option<&str>) -> Option<Backend> {
        let list = self.snapshot();
        let open: Vec<&Backend> = list.iter().filter(|b| !b.draining).collect();
        if let Some(name) = via
            && let Some(b) = open.iter().find(|b| b.name == name)
        {
            return Some((*b).clone());
        }
        if open.is_empty() {
            return None;
        }
        Some(open[self.next.fetch_add(1, Ordering::Relaxed) % open.len()].clone())
    }
}

/// What the balancer serves besides `/ws`.
pub struct Site {
    pub www: PathBuf,
    /// HS256 secret for `/token`, when the fleet's is generated locally.
    pub jwt_secret: Option<String>,
    pub auth_mode: &'static str,
}

/// How long the balancer waits after a failed `accept` before trying again.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
/// How often it repeats that it is out of open files.
const SAY_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// EMFILE or ENFILE: this process, or the whole system, is at its open-file limit.
fn out_of_files(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
}

/// Longest request head accepted (a WebSocket upgrade with a token and `since` fits).
const MAX_HEAD: usize = 32 * 1024;

pub async fn serve(listener: TcpListener, backends: Arc<Backends>, site: Arc<Site>) {
    let mut last_said: Option<std::time::Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // At the open-file limit `accept` fails at once for as long as it lasts:
                // wait for sockets to close instead of spinning, and say so now and then.
                if out_of_files(&e) && last_said.is_none_or(|t| t.elapsed() >= SAY_AGAIN_AFTER) {
                    println!("  ! balancer: {e}: new clients wait until others leave (see the open-file limit above)");
                    last_said = Some(std::time::Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (backends, site) = (backends.clone(), site.clone());
        tokio::spawn(async move {
            let _ = connection(stream, &backends, &site).await;
        });
    }
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

async fn connection(mut client: TcpStream, backends: &Backends, site: &Site) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or_default()).to_string();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split('?').next().unwrap_or("/");
    if path == "/ws" {
        let Some(backend) = backends.pick(query_param(target, "via")) else {
            return respond(&mut client, 503, "text/plain", b"no sidecar is accepting connections\n").await;
        };
        let mut upstream = match TcpStream::connect(("127.0.0.1", backend.ws_port)).await {
            Ok(upstream) => upstream,
            Err(e) if out_of_files(&e) => {
                return respond(&mut client, 503, "text/plain", b"the local balancer is at its open-file limit; try again later\n").await;
            }
            Err(e) => {
                return respond(&mut client, 502, "text/plain", format!("sidecar {} did not answer: {e}\n", backend.name).as_bytes()).await;
            }
        };
        upstream.write_all(&head).await?;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return Ok(());
    }
    if method != "GET" {
        return respond(&mut client, 405, "text/plain", b"only GET\n").await;
    }
    match path {
        "/fleet.json" => {
            let sidecars: Vec<serde_json::Value> = backends
                .snapshot()
                .iter()
                .map(|b| {
                    serde_json::json!({"name": b.name, "ws": format!("ws://127.0.0.1:{}/ws", b.ws_port),
                                       "admin": format!("http://127.0.0.1:{}", b.admin_port),
                                       "api": format!("http://127.0.0.1:{}", b.api_port), "draining": b.draining, "pid": b.pid})
                })
                .collect();
            let redis: Vec<serde_json::Value> =
                backends.redis().iter().map(|n| serde_json::json!({"name": n.name, "addr": n.addr, "pid": n.pid})).collect();
            let body =
                serde_json::json!({"sidecars": sidecars, "redis": redis, "auth": site.auth_mode, "tokens": site.jwt_secret.is_some()});
            respond(&mut client, 200, "application/json", body.to_string().as_bytes()).await
        }
        "/token" => match (&site.jwt_secret, query_param(target, "user")) {
            (Some(secret), Some(user)) if valid_user(user) => {
                respond(&mut client, 200, "text/plain", demo_token(secret, user).as_bytes()).await
            }
            (Some(_), _) => respond(&mut client, 400, "text/plain", b"use /token?user=<1-32 letters, digits, - or _>\n").await,
            (None, _) => respond(&mut client, 404, "text/plain", b"this fleet does not use a locally generated HS256 secret\n").await,
        },
        _ => static_file(&mut client, &site.www, path).await,
    }
}

fn valid_user(u: &str) -> bool {
    (1..=32).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An HS256 JWT for `user` that may subscribe and publish everywhere, valid for a day.
pub fn demo_token(secret: &str, user: &str) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 86_400;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({"sub": user, "exp": exp, "channels": {"subscribe": ["*"], "publish": ["*"]}});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

async fn static_file(client: &mut TcpStream, www: &Path, path: &str) -> std::io::Result<()> {
    let rel = if path == "/" { "index.html" } else { path.trim_start_matches('/') };
    if rel.split('/').any(|seg| seg == ".." || seg.starts_with('.')) {
        return respond(client, 404, "text/plain", b"not found\n").await;
    }
    let file = www.join(rel);
    let content_type = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(&file).await {
        Ok(body) => respond(client, 200, content_type, &body).await,
        Err(_) => respond(client, 404, "text/plain", b"not found\n").await,
    }
}

async fn respond(client: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_round_robin_skipping_draining_and_honours_via() {
        let b = Backends::default();
        b.set(vec![
            Backend { name: "a".into(), ws_port: 1, admin_port: 11, api_port: 211, draining: false, pid: None },
            Backend { name: "b".into(), ws_port: 2, admin_port: 12, api_port: 212, draining: true, pid: None },
            Backend { name: "c".into(), ws_port: 3, admin_port: 13, api_port: 213, draining: false, pid: None },
        ]);
        let picked: Vec<String> = (0..4).filter_map(|_| b.pick(None)).map(|x| x.name).collect();
        assert_eq!(picked, ["a", "c", "a", "c"]);
        assert_eq!(b.pick(Some("c")).map(|x| x.name).as_deref(), Some("c"));
        assert_ne!(b.pick(Some("b")).map(|x| x.name).as_deref(), Some("b"), "a draining sidecar is never picked");
        b.set(Vec::new());
        assert!(b.pick(None).is_none());
    }

    #[test]
    fn demo_tokens_are_hs256_jwts_of_the_user() {
        let t = demo_token("secret-secret-secret-secret-1234", "ada");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["sub"], "ada");
        assert!(valid_user("ada_1") && !valid_user("a b") && !valid_user(""));
    }
}
