//! A known set of keys in a Redis Cluster: `key:<i>` = `value:<i>`, written pipelined per
//! primary and acknowledged by the replicas (`WAIT`), and counted back from each slot's
//! owner. What the resharding tests and the reshard benchmark check "no key lost" with.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use socketfleet_plumbing::redis_conn::connect;

/// Redis Cluster's key slot: CRC16/XMODEM of the key, modulo 16384 (no hash tags here).
pub fn key_slot(key: &str) -> u16 {
    let mut crc: u16 = 0;
    for &b in key.as_bytes() {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// Connections to every healthy primary serving slots and which one owns each slot, as the
/// node at `addr` sees the cluster.
async fn route(addr: &str, password: Option<&str>) -> (Vec<MultiplexedConnection>, Vec<usize>) {
    let timeout = Duration::from_secs(5);
    let mut any = connect(addr, password, timeout).await.expect("connect");
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut any).await.expect("CLUSTER NODES");
    let mut conns = Vec::new();
    let mut owner = vec![usize::MAX; 16384];
    for l in nodes.lines().filter(|l| l.contains("master") && !l.contains("fail")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let node_addr = f[1].split('@').next().expect("addr");
        let ranges: Vec<(usize, usize)> = f[8..]
            .iter()
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        if ranges.is_empty() {
            continue;
        }
        let conn = connect(node_addr, password, timeout).await.expect("connect");
        for (a, b) in ranges {
            owner[a..=b].fill(conns.len());
        }
        conns.push(conn);
    }
    (conns, owner)
}

/// Writes `key:<i>` = `value:<i>` for `0..n` into the cluster `addr` belongs to, pipelined
/// per primary, each pipeline acknowledged by `replicas` replicas (`WAIT`).
pub async fn write_keys(addr: &str, password: Option<&str>, n: usize, replicas: usize) {
    let (mut conns, owner) = route(addr, password).await;
    let mut pipes: Vec<redis::Pipeline> = conns.iter().map(|_| redis::pipe()).collect();
    for i in 0..n {
        let key = format!("key:{i}");
        pipes[owner[key_slot(&key) as usize]].set(&key, format!("value:{i}")).ignore();
    }
    for (pipe, conn) in pipes.iter_mut().zip(conns.iter_mut()) {
        // Acknowledged by the replicas too, as a durable publish is.
        pipe.cmd("WAIT").arg(replicas).arg(10_000);
        let (copies,): (usize,) = pipe.query_async(conn).await.expect("write keys");
        assert_eq!(copies, replicas, "every replica has the keys");
    }
}

/// How many of `key:<i>` for `0..n` read back as `value:<i>` from their slot's owner.
pub async fn readable_keys(addr: &str, password: Option<&str>, n: usize) -> usize {
    let (mut conns, owner) = route(addr, password).await;
    let mut good = 0;
    for i in 0..n {
        let key = format!("key:{i}");
        let got: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conns[owner[key_slot(&key) as usize]]).await.unwrap_or(None);
        good += usize::from(got.as_deref() == Some(format!("value:{i}").as_str()));
    }
    good
}
