//! `ws-idle-probe <tungstenite|fastwebsockets> <addr>`: the smallest hyper 1 WebSocket
//! server each candidate library allows, holding every connection in a read loop. Used by
//! `scripts/bench-ws-libs.sh` to compare memory per idle connection between the libraries
//! on equal terms (no sidecar logic), which is how the sidecar's library was chosen.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

type Body = http_body_util::Either<Empty<Bytes>, Empty<Bytes>>;

async fn tungstenite(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let key = req.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())).unwrap_or_default();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            let config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, Some(config)).await;
            let _ =
                futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::Text("{\"type\":\"welcome\"}".into())).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
    });
    let resp = Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", key)
        .body(http_body_util::Either::Left(Empty::new()));
    Ok(resp.unwrap_or_else(|_| Response::new(http_body_util::Either::Left(Empty::new()))))
}

async fn fast(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let Ok((resp, fut)) = fastwebsockets::upgrade::upgrade(&mut req) else {
        return Ok(Response::new(http_body_util::Either::Right(Empty::new())));
    };
    tokio::spawn(async move {
        if let Ok(ws) = fut.await {
            let mut ws = fastwebsockets::FragmentCollector::new(ws);
            let hello = fastwebsockets::Frame::text(fastwebsockets::Payload::Borrowed(b"{\"type\":\"welcome\"}"));
            let _ = ws.write_frame(hello).await;
            while let Ok(frame) = ws.read_frame().await {
                if frame.opcode == fastwebsockets::OpCode::Close {
                    break;
                }
            }
        }
    });
    Ok(resp.map(|_| http_body_util::Either::Right(Empty::new())))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (lib, addr) = (args.get(1).cloned().unwrap_or_default(), args.get(2).cloned().unwrap_or_default());
    let use_fast = match lib.as_str() {
        "tungstenite" => false,
        "fastwebsockets" => true,
        _ => anyhow::bail!("usage: ws-idle-probe <tungstenite|fastwebsockets> <addr>"),
    };
    // Port 0 picks a free one: say which, for the script that connects to it.
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let builder = hyper::server::conn::http1::Builder::new();
            let _ = if use_fast {
                builder.serve_connection(io, service_fn(fast)).with_upgrades().await
            } else {
                builder.serve_connection(io, service_fn(tungstenite)).with_upgrades().await
            };
        });
    }
}
