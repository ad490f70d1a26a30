//! Which Redis node owns which slot.
//!
//! Cluster mode asks any reachable node for `CLUSTER SHARDS` and keeps, per slot range,
//! the primary that is online. Sentinel mode asks the Sentinels for the current primary.
//! Standalone mode has one node. The result is always a [`SlotMap`], so the router and
//! the subscriber never care which mode they run in.

use std::time::Duration;

use redis::Value;

use super::{Addr, connect};
use socketfleet_api::settings::{RedisMode, RedisSettings};

use super::slot::SLOTS;

/// Slot ranges and the primary serving each (None: uncovered right now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    ranges: Vec<(u16, u16, Option<Addr>)>,
}

impl SlotMap {
    /// Every slot on one node.
    pub fn single(addr: Addr) -> SlotMap {
        SlotMap { ranges: vec![(0, SLOTS - 1, Some(addr))] }
    }

    pub fn from_ranges(mut ranges: Vec<(u16, u16, Option<Addr>)>) -> SlotMap {
        ranges.sort_by_key(|r| r.0);
        SlotMap { ranges }
    }

    pub fn owner(&self, slot: u16) -> Option<&Addr> {
        let i = self.ranges.partition_point(|r| r.1 < slot);
        self.ranges.get(i).filter(|r| r.0 <= slot).and_then(|r| r.2.as_ref())
    }

    /// How many slots have an online primary.
    pub fn covered(&self) -> u32 {
        self.ranges.iter().filter(|r| r.2.is_some()).map(|r| u32::from(r.1 - r.0) + 1).sum()
    }

    pub fn primaries(&self) -> Vec<Addr> {
        let mut v: Vec<Addr> = self.ranges.iter().filter_map(|r| r.2.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Resolution failed everywhere it was tried.
#[derive(Debug, thiserror::Error)]
#[error("no Redis node could describe the topology: {0}")]
pub struct TopologyError(pub String);

/// Resolves the slot map for one configured Redis.
#[derive(Debug, Clone)]
pub struct Topology {
    mode: RedisMode,
    seeds: Vec<Addr>,
    password: Option<String>,
    sentinel_password: Option<String>,
    timeout: Duration,
}

impl Topology {
    pub fn new(config: &RedisSettings) -> Topology {
        Topology {
            mode: config.mode.clone(),
            seeds: config.addrs.iter().map(|a| Addr::from(a.as_str())).collect(),
            password: config.password.as_ref().and_then(|p| p.value()).map(str::to_string),
            sentinel_password: config.sentinel_password.as_ref().and_then(|p| p.value()).map(str::to_string),
            timeout: config.timeout,
        }
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Resolves the current map. `known` are nodes seen before (tried first in cluster
    /// mode, because seeds may have been replaced).
    pub async fn resolve(&self, known: &[Addr]) -> Result<SlotMap, TopologyError> {
        match &self.mode {
            RedisMode::Standalone => Ok(SlotMap::single(self.seeds[0].clone())),
            RedisMode::Sentinel { master } => self.resolve_sentinel(master).await,
            RedisMode::Cluster => self.resolve_cluster(known).await,
        }
    }

    async fn resolve_sentinel(&self, master: &str) -> Result<SlotMap, TopologyError> {
        let mut last_err = String::from("no sentinels configured");
        for sentinel in &self.seeds {
            // Sentinels have their own password (or none), not the Redis password.
            let reply = async {
                let mut conn = connect(sentinel, self.sentinel_password.as_deref(), self.timeout).await?;
                redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(master).query_async::<Option<(String, u16)>>(&mut conn).await
            }
            .await;
            match reply {
                Ok(Some((host, port))) => return Ok(SlotMap::single(Addr::from(format!("{host}:{port}")))),
                Ok(None) => last_err = format!("sentinel {sentinel} does not know master {master:?}"),
                Err(e) => last_err = format!("sentinel {sentinel}: {e}"),
            }
        }
        Err(TopologyError(last_err))
    }

    async fn resolve_cluster(&self, known: &[Addr]) -> Result<SlotMap, TopologyError> {
        let mut candidates: Vec<Addr> = known.to_vec();
        for s in &self.seeds {
            if !candidates.contains(s) {
                candidates.push(s.clone());
            }
        }
        let mut best: Option<SlotMap> = None;
        let mut last_err = String::from("no nodes configured");
        for node in &candidates {
            let reply = async {
                let mut conn = connect(node, self.password.as_deref(), self.timeout).await?;
                redis::cmd("CLUSTER").arg("SHARDS").query_async::<Value>(&mut conn).await
            }
            .await;
            match reply {
                Ok(v) => match parse_cluster_shards(&v) {
                    Some(map) if map.covered() == u32::from(SLOTS) => return Ok(map),
                    Some(map) => {
                        if best.as_ref().is_none_or(|b| map.covered() > b.covered()) {
                            best = Some(map);
                        }
                    }
                    None => last_err = format!("{node}: unexpected CLUSTER SHARDS reply"),
                },
                Err(e) => last_err = format!("{node}: {e}"),
            }
        }
        best.ok_or(TopologyError(last_err))
    }
}

/// A reply value as text (bulk, simple or integer), for the commands whose answers we read.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Reads a flat `[key, value, key, value...]` array (or a RESP3 map) as pairs.
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Array(items) => items.chunks(2).map(|kv| Some((text(&kv[0])?, kv.get(1)?))).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => None,
    }
}

/// Parses `CLUSTER SHARDS`: per shard, its slot ranges and the online primary.
pub fn parse_cluster_shards(v: &Value) -> Option<SlotMap> {
    let Value::Array(shards) = v else { return None };
    let mut ranges = Vec::new();
    for shard in shards {
        let fields = pairs(shard)?;
        let slots = fields.iter().find(|(k, _)| k == "slots").map(|(_, v)| *v)?;
        let nodes = fields.iter().find(|(k, _)| k == "nodes").map(|(_, v)| *v)?;
        let mut primary = None;
        if let Value::Array(nodes) = nodes {
            for node in nodes {
                let f = pairs(node)?;
                let get = |k: &str| f.iter().find(|(key, _)| key == k).and_then(|(_, v)| text(v));
                if get("role").as_deref() == Some("master") && get("health").as_deref() == Some("online") {
                    let host = get("endpoint").filter(|e| !e.is_empty() && e != "?").or_else(|| get("ip"))?;
                    let port = get("port").or_else(|| get("tls-port"))?;
                    primary = Some(Addr::from(format!("{host}:{port}")));
                }
            }
        }
        let Value::Array(bounds) = slots else { return None };
        for pair in bounds.chunks(2) {
            let start: u16 = text(&pair[0])?.parse().ok()?;
            let end: u16 = text(pair.get(1)?)?.parse().ok()?;
            ranges.push((start, end, primary.clone()));
        }
    }
    Some(SlotMap::from_ranges(ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(port: i64, role: &str, health: &str) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Value::Int(7),
            bulk("health"),
            bulk(health),
        ])
    }

    fn shard(slots: &[i64], nodes: Vec<Value>) -> Value {
        Value::Array(vec![bulk("slots"), Value::Array(slots.iter().map(|s| Value::Int(*s)).collect()), bulk("nodes"), Value::Array(nodes)])
    }

    #[test]
    fn parses_shards_and_picks_online_primaries() {
        let reply = Value::Array(vec![
            shard(&[0, 5460], vec![node(7000, "master", "online"), node(7003, "replica", "online")]),
            shard(&[5461, 10922], vec![node(7001, "master", "fail"), node(7004, "replica", "online")]),
            shard(&[10923, 12000, 12001, 16383], vec![node(7002, "master", "online")]),
        ]);
        let map = parse_cluster_shards(&reply).expect("parses");
        assert_eq!(map.owner(0).map(|a| &**a), Some("127.0.0.1:7000"));
        assert_eq!(map.owner(5460).map(|a| &**a), Some("127.0.0.1:7000"));
        assert_eq!(map.owner(5461), None, "failed primary leaves slots uncovered");
        assert_eq!(map.owner(16383).map(|a| &**a), Some("127.0.0.1:7002"));
        assert_eq!(map.covered(), 16384 - 5462);
        assert_eq!(map.primaries().len(), 2);
    }

    #[test]
    fn single_node_owns_everything() {
        let map = SlotMap::single(Addr::from("h:1"));
        assert_eq!(map.covered(), 16384);
        assert_eq!(map.owner(12345).map(|a| &**a), Some("h:1"));
    }
}
