//! Free loopback ports. A port is only free when it is picked: whoever binds it must be
//! ready to pick again ([`crate::redis::start_anywhere`] does).

use std::net::TcpListener;

pub fn try_free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())
}

/// A free port whose cluster bus port (port + 10000) is valid and free too.
pub fn try_free_cluster_port() -> std::io::Result<u16> {
    for _ in 0..1000 {
        let p = try_free_port()?;
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return Ok(p);
        }
    }
    Err(std::io::Error::other("no free pair of loopback ports for a Redis Cluster node"))
}

/// [`try_free_port`] for tests, where no port is a failure.
pub fn free_port() -> u16 {
    try_free_port().expect("a free port")
}

/// [`try_free_cluster_port`] for tests.
pub fn free_cluster_port() -> u16 {
    try_free_cluster_port().expect("a free port pair")
}
