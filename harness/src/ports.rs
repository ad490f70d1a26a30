//! Free loopback ports. A port is only free when it is picked: whoever binds it must be
//! ready to pick again ([`crate::redis::start_anywhere`] does).
//!
//! Ports are picked below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`),
//! never inside it: a port there can be taken, while its server is restarting, as the
//! source port of any outgoing connection on the machine (a benchmark's 10,000 clients
//! reconnecting, say), and the server then cannot have it back. Only when nothing below
//! that range is free is the kernel asked for one.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lowest port picked: below it live the well-known and registered services.
const LOWEST: u16 = 10_000;

/// Attempts at a random port below the ephemeral range before asking the kernel.
const ATTEMPTS: usize = 200;

/// The first port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A number in `lo..hi` (`lo < hi`): splitmix64 over a per-process seed and a counter, so
/// processes started together (tests run in parallel) pick different ports.
fn random_in(lo: u16, hi: u16) -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32);
    let mut z = seed.wrapping_add(NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    lo + (z % u64::from(hi - lo)) as u16
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Every port this process has picked: never picked twice. A test that kills a node and
/// starts it again on its port finds that port free meanwhile, and another test running
/// beside it in the same process must not take it then.
static PICKED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// Whether `port` and `bus` were not picked before; if so, they are picked now.
fn claim(port: u16, bus: Option<u16>) -> bool {
    let mut picked = PICKED.lock().unwrap_or_else(|p| p.into_inner());
    if picked.contains(&port) || bus.is_some_and(|b| picked.contains(&b)) {
        return false;
    }
    picked.push(port);
    picked.extend(bus);
    true
}

/// A free port in `lo..hi`, never picked before, whose `port + offset` is free and new too,
/// or None after [`ATTEMPTS`].
fn pick(lo: u16, hi: u16, offset: u16) -> Option<u16> {
    if lo >= hi {
        return None;
    }
    (0..ATTEMPTS).map(|_| random_in(lo, hi)).find(|&p| {
        let bus = (offset != 0).then(|| p + offset);
        free(p) && bus.is_none_or(free) && claim(p, bus)
    })
}

/// A free port the kernel picks (inside its ephemeral range).
fn kernel_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())
}

/// A kernel-picked port never picked before, with its bus port (`port + offset`, free and
/// new too) when `offset` is not 0.
fn kernel_pick(offset: u16) -> std::io::Result<u16> {
    for _ in 0..1000 {
        let p = kernel_port()?;
        let bus = match offset {
            0 => None,
            _ => match p.checked_add(offset) {
                Some(b) if free(b) => Some(b),
                _ => continue,
            },
        };
        if claim(p, bus) {
            return Ok(p);
        }
    }
    Err(std::io::Error::other("no new free loopback port"))
}

pub fn try_free_port() -> std::io::Result<u16> {
    pick(LOWEST, ephemeral_start(), 0).map_or_else(|| kernel_pick(0), Ok)
}

/// A free port whose cluster bus port (port + 10000) is valid and free too, both below the
/// ephemeral range when there is room.
pub fn try_free_cluster_port() -> std::io::Result<u16> {
    pick(LOWEST, ephemeral_start().saturating_sub(10_000), 10_000).map_or_else(
        || kernel_pick(10_000).map_err(|_| std::io::Error::other("no free pair of loopback ports for a Redis Cluster node")),
        Ok,
    )
}

/// [`try_free_port`] for tests, where no port is a failure.
pub fn free_port() -> u16 {
    try_free_port().expect("a free port")
}

/// [`try_free_cluster_port`] for tests.
pub fn free_cluster_port() -> u16 {
    try_free_cluster_port().expect("a free port pair")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_picked_free_and_below_the_ephemeral_range() {
        let start = ephemeral_start();
        // A machine whose ephemeral range starts this low leaves no room below it: the
        // kernel picks there, and only freeness can be checked.
        let room = start > LOWEST + 10_000;
        for _ in 0..50 {
            let p = free_port();
            assert!(!room || (LOWEST..start).contains(&p), "{p} is outside {LOWEST}..{start}");
            assert!(TcpListener::bind(("127.0.0.1", p)).is_ok(), "{p} is free");
            let c = free_cluster_port();
            assert!(!room || (LOWEST..start - 10_000).contains(&c), "cluster port {c}");
            assert!(TcpListener::bind(("127.0.0.1", c + 10_000)).is_ok(), "its bus port {} is free", c + 10_000);
        }
    }

    #[test]
    fn a_port_is_picked_once_per_process_even_when_it_is_free_again() {
        let first: Vec<u16> = (0..100).map(|_| free_port()).collect();
        let cluster: Vec<u16> = (0..50).map(|_| free_cluster_port()).collect();
        // None of them is bound: each is free, and still never picked again.
        for _ in 0..300 {
            let p = free_port();
            assert!(!first.contains(&p) && !cluster.contains(&p) && !cluster.iter().any(|c| c + 10_000 == p), "{p} picked twice");
        }
    }

    #[test]
    fn a_port_in_use_is_never_picked() {
        let held: Vec<TcpListener> = (0..50).map(|_| TcpListener::bind(("127.0.0.1", free_port())).expect("bind")).collect();
        let ports: Vec<u16> = held.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        for _ in 0..200 {
            assert!(!ports.contains(&free_port()));
        }
    }
}
