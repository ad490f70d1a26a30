//! Free loopback ports, and a clear message when a requested one is busy.

use std::net::TcpListener;

/// A port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free port whose Redis Cluster bus port (+10000) is free and valid too.
pub fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..1000 {
        let port = free_port()?;
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free pair of loopback ports for a Redis Cluster node")
}
