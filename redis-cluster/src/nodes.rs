//! `CLUSTER NODES` as data: one node's view of the cluster.

use std::collections::BTreeSet;

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// A slot being moved, as the node reporting it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenSlot {
    /// `[slot->-target]`: this node is sending the slot to `target`.
    Migrating { slot: u16, to: String },
    /// `[slot-<-source]`: this node is receiving the slot from `source`.
    Importing { slot: u16, from: String },
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// `ip:port` (empty when the node has no address yet).
    pub addr: String,
    pub myself: bool,
    pub master: bool,
    /// `fail` (agreed by the cluster), not just `fail?`.
    pub failed: bool,
    /// `fail?`: this node alone suspects it.
    pub suspected: bool,
    pub handshake: bool,
    pub noaddr: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    pub connected: bool,
    /// Slots it owns.
    pub slots: BTreeSet<u16>,
    /// Open slots; only listed in the `myself` line.
    pub open: Vec<OpenSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable CLUSTER NODES line {line:?}: {problem}")]
pub struct ParseError {
    pub line: String,
    pub problem: &'static str,
}

fn slot(s: &str) -> Option<u16> {
    s.parse().ok().filter(|n| *n < SLOTS)
}

impl NodeLine {
    pub fn parse(line: &str) -> Result<NodeLine, ParseError> {
        let bad = |problem| ParseError { line: line.to_string(), problem };
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 8 {
            return Err(bad("fewer than 8 fields"));
        }
        // `ip:port@cport[,hostname]`
        let addr = f[1].split(['@', ',']).next().unwrap_or_default();
        let addr = if addr.starts_with(':') { String::new() } else { addr.to_string() };
        let flags: Vec<&str> = f[2].split(',').collect();
        let has = |flag: &str| flags.contains(&flag);
        let mut node = NodeLine {
            id: f[0].to_string(),
            addr,
            myself: has("myself"),
            master: has("master"),
            failed: has("fail"),
            suspected: has("fail?"),
            handshake: has("handshake"),
            noaddr: has("noaddr"),
            master_id: (f[3] != "-").then(|| f[3].to_string()),
            connected: f[7] == "connected",
            slots: BTreeSet::new(),
            open: Vec::new(),
        };
        for s in &f[8..] {
            if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                if let Some((n, to)) = inner.split_once("->-") {
                    node.open.push(OpenSlot::Migrating { slot: slot(n).ok_or_else(|| bad("bad migrating slot"))?, to: to.to_string() });
                } else if let Some((n, from)) = inner.split_once("-<-") {
                    node.open.push(OpenSlot::Importing { slot: slot(n).ok_or_else(|| bad("bad importing slot"))?, from: from.to_string() });
                } else {
                    return Err(bad("bad open slot"));
                }
            } else if let Some((a, b)) = s.split_once('-') {
                let (a, b) = (slot(a).ok_or_else(|| bad("bad slot range"))?, slot(b).ok_or_else(|| bad("bad slot range"))?);
                node.slots.extend(a..=b);
            } else {
                node.slots.insert(slot(s).ok_or_else(|| bad("bad slot"))?);
            }
        }
        Ok(node)
    }

    /// Serves its slots: a master that is neither failed nor unknown.
    pub fn healthy_master(&self) -> bool {
        self.master && !self.failed && !self.handshake && !self.noaddr
    }
}

/// Whether a view knows a replica of `id` that the cluster has not marked failed (its
/// link state aside: a link is re-made under load while the replica is fine).
pub fn has_unfailed_replica(view: &[NodeLine], id: &str) -> bool {
    view.iter().any(|n| n.master_id.as_deref() == Some(id) && !n.failed)
}

/// A whole `CLUSTER NODES` reply.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, ParseError> {
    text.lines().filter(|l| !l.trim().is_empty()).map(NodeLine::parse).collect()
}

/// Compresses slots into inclusive ranges, for ADDSLOTSRANGE and for people.
pub fn ranges(slots: &BTreeSet<u16>) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 slave,fail 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
a1b2 :0@0 master,noaddr - 0 0 0 disconnected
";

    #[test]
    fn parses_roles_flags_slots_and_open_slots() {
        let nodes = parse_nodes(SAMPLE).expect("parses");
        assert_eq!(nodes.len(), 6);
        assert_eq!(nodes[0].addr, "127.0.0.1:30004");
        assert_eq!(nodes[0].master_id.as_deref(), Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"));
        assert_eq!(nodes[1].slots.len(), 10922 - 5461 + 1);
        assert!(nodes[3].failed && !nodes[3].connected && !nodes[3].master);
        let me = &nodes[4];
        assert!(me.myself && me.master && me.healthy_master());
        assert_eq!(me.slots.len(), 5461);
        assert_eq!(
            me.open,
            vec![
                OpenSlot::Importing { slot: 5461, from: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".into() },
                OpenSlot::Migrating { slot: 93, to: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f".into() },
            ]
        );
        assert!(nodes[5].noaddr && nodes[5].addr.is_empty() && !nodes[5].healthy_master());
    }

    #[test]
    fn a_replica_on_a_dropped_link_may_still_take_over_but_a_failed_one_may_not() {
        // The view after a primary died under load: the anchor's link to its replica is
        // being made again ("disconnected"), but nobody marked the replica failed.
        let view = parse_nodes(
            "\
aaa 127.0.0.1:30001@31001 master,fail - 0 0 1 disconnected 0-5460
bbb 127.0.0.1:30002@31002 slave aaa 0 0 1 disconnected
ccc 127.0.0.1:30003@31003 myself,master - 0 0 2 connected 5461-16383
ddd 127.0.0.1:30004@31004 slave,fail ccc 0 0 2 disconnected
",
        )
        .expect("parses");
        assert!(has_unfailed_replica(&view, "aaa"), "the replica on a dropped link may still be promoted");
        assert!(!has_unfailed_replica(&view, "ccc"), "a failed replica takes nothing over");
        assert!(!has_unfailed_replica(&view, "bbb"), "a replica has no replicas");
    }

    #[test]
    fn refuses_garbage_and_compresses_ranges() {
        assert!(NodeLine::parse("abc 1.2.3.4:1@2 master").is_err());
        assert!(NodeLine::parse("a 1.2.3.4:1@2 master - 0 0 1 connected 99999").is_err());
        let slots: BTreeSet<u16> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(ranges(&slots), vec![(0, 2), (5, 5), (7, 8)]);
    }
}
