//! Opening client WebSockets. Each client of a loopback target binds its own loopback
//! source address (127.0.0.1 to 127.0.0.16, by client index) so that tens of thousands of
//! connections to one server port do not run out of ephemeral ports; other targets (a
//! test node's Service address) get the route's own source address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

const SOURCE_ADDRESSES: u32 = 16;

pub async fn open(url: &str, client: usize) -> anyhow::Result<Ws> {
    let authority = url.split('/').nth(2).context("no host in url")?;
    let target: SocketAddr = authority.parse().context("the benchmark targets ip:port addresses")?;
    let socket = TcpSocket::new_v4()?;
    if target.ip().is_loopback() {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (client as u32 % SOURCE_ADDRESSES) as u8);
        socket.bind(SocketAddr::new(source.into(), 0))?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(target)).await.context("connect timed out")??;
    stream.set_nodelay(true)?;
    // Small client buffers: the generator holds up to 50,000 of these in one process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::client_async_with_config(url, stream, Some(config)))
        .await
        .context("handshake timed out")??;
    Ok(ws)
}
