//! The one HTTP/1 accept loop behind every listener (the sidecar's WebSocket, admin and app
//! API ports; the operator's metrics port).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

pub type HttpResponse = Response<Full<Bytes>>;

/// A plain response with a content type.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    respond(status, "text/plain; charset=utf-8", body.into())
}

/// A JSON response of any serializable body (a `serde_json::Value` or a typed shape).
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    respond(status, "application/json", serde_json::to_string(body).unwrap_or_default())
}

/// How many connections the kernel may queue for a listener before it is accepted from.
/// tokio's default (1024) overflows when thousands of clients reconnect at once: the kernel
/// then drops their SYNs and each of them waits out TCP's retransmits (1, 3, 7 s). The
/// kernel caps this at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: u32 = 65_535;

/// A listener on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's own bind).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts until `shutdown` turns true; each connection is served by `handler`, with
/// upgrades enabled and a bound on how long request headers may take to arrive.
pub async fn serve<F, Fut>(listener: TcpListener, mut shutdown: watch::Receiver<bool>, header_timeout: Duration, handler: F)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    // A closed channel means nobody can ask us to stop: serve forever.
    let stop = async move {
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let fut = handler(req);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
}
