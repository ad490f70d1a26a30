//! What the cluster should look like for a layout, decided from roles the cluster reports,
//! and what is left to do to get there. Pure, so every rule is unit- and property-tested.
//!
//! Roles are never assumed from ordinals after creation (a failover swaps them), with one
//! exception that resharding needs: the pods a smaller layout keeps are the lowest
//! ordinals, because a StatefulSet removes the highest. So:
//!
//! - **handover**: a primary on a pod that is going away, with a replica on a pod that
//!   stays, hands its slots to that replica (`CLUSTER FAILOVER`: no data moves);
//! - **primaries**: the layout's `shards` primaries are the staying pods that own slots
//!   (lowest ordinals first when there are too many), topped up with empty staying
//!   primaries (those that already have replicas first, then the lowest ordinals);
//! - **moves**: each chosen primary's share of the 16384 slots is the even split; every
//!   pod holding more than its share (everything, for a pod that is not chosen) gives
//!   slots to those holding less, so a scale-out takes from every old primary and a
//!   scale-in spreads a leaving primary over all that remain;
//! - **attach**: each chosen primary gets `replicasPerShard` replicas from the staying
//!   pods that are not chosen primaries (empty primaries, replicas of a pod not chosen,
//!   replicas beyond a primary's share). A replica whose primary is away is never
//!   re-pointed: it may be the one promoted, and re-pointing a replica empties it.

use std::collections::{BTreeMap, BTreeSet};

use super::layout::Layout;
use super::nodes::SLOTS;

/// One reachable pod as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ordinal: usize,
    pub id: String,
    /// A primary (owning slots or empty); false for a replica.
    pub master: bool,
    /// Slots it owns, as the cluster agrees.
    pub slots: usize,
    /// The primary it replicates.
    pub master_id: Option<String>,
    /// Not failed and linked: it can take part.
    pub healthy: bool,
}

/// The way from what is to what the layout asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replicas (by id) that take over from a primary on a leaving pod.
    pub handovers: Vec<String>,
    /// The primaries the layout ends with, by id.
    pub primaries: Vec<String>,
    /// (from id, to id, slot count).
    pub moves: Vec<(String, String, usize)>,
    /// (replica id, primary id) links to make.
    pub attach: Vec<(String, String)>,
}

impl Plan {
    pub fn slots_to_move(&self) -> usize {
        self.moves.iter().map(|m| m.2).sum()
    }
}

/// Whether the layout keeps the pod with this ordinal.
pub fn stays(layout: Layout, ordinal: usize) -> bool {
    ordinal < layout.pods()
}

pub fn plan(layout: Layout, nodes: &[Node]) -> Plan {
    let mut out = Plan::default();
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let owners: Vec<&Node> = nodes.iter().filter(|n| n.master && n.slots > 0 && n.healthy).collect();

    for owner in owners.iter().filter(|o| !stays(layout, o.ordinal)) {
        let heir = nodes
            .iter()
            .filter(|n| n.healthy && stays(layout, n.ordinal) && n.master_id.as_deref() == Some(owner.id.as_str()))
            .min_by_key(|n| n.ordinal);
        if let Some(heir) = heir {
            out.handovers.push(heir.id.clone());
        }
    }

    let mut chosen: Vec<&Node> = owners.iter().copied().filter(|o| stays(layout, o.ordinal)).collect();
    chosen.sort_by_key(|n| n.ordinal);
    chosen.truncate(layout.shards);
    if chosen.len() < layout.shards {
        let followed: BTreeSet<&str> = nodes.iter().filter_map(|n| n.master_id.as_deref()).collect();
        let mut empty: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.master && n.slots == 0 && n.healthy && stays(layout, n.ordinal))
            .filter(|n| !chosen.iter().any(|c| c.id == n.id))
            .collect();
        empty.sort_by_key(|n| (!followed.contains(n.id.as_str()), n.ordinal));
        chosen.extend(empty.into_iter().take(layout.shards - chosen.len()));
    }
    out.primaries = chosen.iter().map(|n| n.id.clone()).collect();

    // Shares: the even split, the larger shares to the pods that own the most now.
    let mut by_holding: Vec<&Node> = chosen.clone();
    by_holding.sort_by_key(|n| (std::cmp::Reverse(n.slots), n.ordinal));
    let k = by_holding.len().max(1);
    let share = |rank: usize| SLOTS as usize / k + usize::from(rank < SLOTS as usize % k);
    let target: BTreeMap<&str, usize> = by_holding.iter().enumerate().map(|(i, n)| (n.id.as_str(), share(i))).collect();
    // A plan of moves only when every slot has an owner (new slots are assigned first) and
    // no handover is pending (that would move the same slots twice).
    let owned: usize = owners.iter().map(|n| n.slots).sum();
    if !chosen.is_empty() && owned == SLOTS as usize && out.handovers.is_empty() {
        let mut givers: Vec<(&str, usize)> = owners
            .iter()
            .filter_map(|n| {
                let keep = target.get(n.id.as_str()).copied().unwrap_or(0);
                (n.slots > keep).then(|| (n.id.as_str(), n.slots - keep))
            })
            .collect();
        givers.sort_by_key(|(id, _)| by_id.get(id).map(|n| n.ordinal));
        let mut takers: Vec<(&str, usize)> = chosen
            .iter()
            .filter_map(|n| {
                let want = target[n.id.as_str()];
                (n.slots < want).then(|| (n.id.as_str(), want - n.slots))
            })
            .collect();
        let mut t = 0;
        for (from, mut excess) in givers {
            while excess > 0 && t < takers.len() {
                let n = excess.min(takers[t].1);
                out.moves.push((from.to_string(), takers[t].0.to_string(), n));
                excess -= n;
                takers[t].1 -= n;
                if takers[t].1 == 0 {
                    t += 1;
                }
            }
        }
    }

    // Replicas: keep the links to chosen primaries (up to the share), then fill the gaps
    // from the spare staying pods, lowest ordinals first.
    let mut have: BTreeMap<&str, usize> = chosen.iter().map(|n| (n.id.as_str(), 0)).collect();
    let mut spare: Vec<&Node> = Vec::new();
    let mut staying: Vec<&Node> = nodes.iter().filter(|n| n.healthy && stays(layout, n.ordinal)).collect();
    staying.sort_by_key(|n| n.ordinal);
    for n in staying {
        if have.contains_key(n.id.as_str()) || (n.master && n.slots > 0) {
            continue; // a chosen primary, or a primary still giving its slots away
        }
        if let Some(m) = n.master_id.as_deref()
            && !by_id.get(m).is_some_and(|m| m.healthy)
        {
            continue; // its primary is away: it may be promoted, and must keep its data
        }
        match n.master_id.as_deref().and_then(|m| have.get_mut(m)) {
            Some(count) if *count < layout.replicas_per_shard => *count += 1,
            _ => spare.push(n),
        }
    }
    let mut spare = spare.into_iter();
    for p in &chosen {
        while have[p.id.as_str()] < layout.replicas_per_shard {
            let Some(s) = spare.next() else { break };
            out.attach.push((s.id.clone(), p.id.clone()));
            *have.get_mut(p.id.as_str()).expect("chosen") += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(ordinal: usize, slots: usize, master_of: Option<usize>) -> Node {
        Node {
            ordinal,
            id: format!("n{ordinal}"),
            master: master_of.is_none(),
            slots,
            master_id: master_of.map(|m| format!("n{m}")),
            healthy: true,
        }
    }

    /// 3 primaries (0, 1, 2) with the even split, a replica each (3, 4, 5): created by
    /// ordinal, `ordinal % shards`.
    fn three_by_one() -> Vec<Node> {
        let mut v: Vec<Node> = (0..3).map(|i| node(i, Layout { shards: 3, replicas_per_shard: 1 }.slots_of(i).len(), None)).collect();
        v.extend((3..6).map(|i| node(i, 0, Some(i - 3))));
        v
    }

    #[test]
    fn a_settled_cluster_has_nothing_to_do() {
        let p = plan(Layout { shards: 3, replicas_per_shard: 1 }, &three_by_one());
        assert_eq!(p, Plan { primaries: vec!["n0".into(), "n1".into(), "n2".into()], ..Plan::default() });
    }

    #[test]
    fn scale_out_takes_from_every_old_primary_and_gives_new_primaries_replicas() {
        let mut nodes = three_by_one();
        nodes.extend((6..10).map(|i| node(i, 0, None)));
        let p = plan(Layout { shards: 5, replicas_per_shard: 1 }, &nodes);
        assert_eq!(p.primaries, ["n0", "n1", "n2", "n6", "n7"]);
        let givers: BTreeSet<&str> = p.moves.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(givers, ["n0", "n1", "n2"].into_iter().collect());
        let to = |id: &str| p.moves.iter().filter(|m| m.1 == id).map(|m| m.2).sum::<usize>();
        // 16384 = 4 × 3277 + 3276: the odd share goes to a new primary, which moves least.
        assert_eq!((to("n6"), to("n7")), (3277, 3276), "{p:?}");
        assert_eq!(p.attach, [("n8".to_string(), "n6".to_string()), ("n9".into(), "n7".into())]);
    }

    #[test]
    fn scale_in_hands_over_where_a_staying_replica_exists_then_spreads_the_rest() {
        // 5 shards, ordinal % 5: primaries 0..4, replicas 5..9 (5 follows 0, ...).
        let five = Layout { shards: 5, replicas_per_shard: 1 };
        let mut nodes: Vec<Node> = (0..5).map(|i| node(i, five.slots_of(i).len(), None)).collect();
        nodes.extend((5..10).map(|i| node(i, 0, Some(i - 5))));
        // A failover made 7 the primary of shard 2 (its old primary, 2, now follows it).
        nodes[2] = node(2, 0, Some(7));
        nodes[7] = node(7, five.slots_of(2).len(), None);
        let three = Layout { shards: 3, replicas_per_shard: 1 };
        let p = plan(three, &nodes);
        assert_eq!(p.handovers, ["n2"], "7 leaves; its replica 2 stays and takes over");
        assert!(p.moves.is_empty(), "nothing moves before the handover");

        nodes[2] = node(2, five.slots_of(2).len(), None);
        nodes[7] = node(7, 0, Some(2));
        let p = plan(three, &nodes);
        assert!(p.handovers.is_empty());
        assert_eq!(p.primaries, ["n0", "n1", "n2"]);
        let from = |id: &str| p.moves.iter().filter(|m| m.0 == id).map(|m| m.2).sum::<usize>();
        assert_eq!(from("n3") + from("n4"), five.slots_of(3).len() + five.slots_of(4).len());
        let receivers: BTreeSet<&str> = p.moves.iter().map(|m| m.1.as_str()).collect();
        assert_eq!(receivers.len(), 3, "spread over every staying primary: {p:?}");
        // 3 and 4 give their slots away first; the staying replica 5 follows 0 already.
        assert!(p.attach.is_empty(), "{p:?}");
    }

    #[test]
    fn a_replica_whose_primary_is_away_keeps_its_data() {
        let mut nodes = three_by_one();
        nodes.remove(0); // primary 0 died; replica 3 still follows it
        nodes.push(node(6, 0, None));
        let p = plan(Layout { shards: 3, replicas_per_shard: 1 }, &nodes);
        assert!(p.attach.iter().all(|(r, _)| r != "n3"), "{p:?}");
    }

    #[test]
    fn no_moves_while_slots_have_no_owner() {
        let mut nodes = three_by_one();
        nodes[2].slots = 0;
        nodes[2].healthy = false;
        let p = plan(Layout { shards: 3, replicas_per_shard: 1 }, &nodes);
        assert!(p.moves.is_empty());
    }

    proptest! {
        /// From any arrangement of up to 12 pods, the plan's moves end every chosen primary
        /// at its even share, take slots only from holders, and never give a pod more
        /// than one role.
        #[test]
        fn moves_end_at_the_even_split(shards in 3usize..7, replicas in 0usize..3, owners in 1usize..8, extra in 0usize..6) {
            let layout = Layout { shards, replicas_per_shard: replicas };
            let pods = owners + extra;
            let split = Layout { shards: owners, replicas_per_shard: 0 };
            let mut nodes: Vec<Node> = (0..owners).map(|i| node(i, split.slots_of(i).len(), None)).collect();
            nodes.extend((owners..pods).map(|i| node(i, 0, None)));
            let p = plan(layout, &nodes);
            if !p.handovers.is_empty() {
                return Ok(());
            }
            let mut held: BTreeMap<String, i64> = nodes.iter().map(|n| (n.id.clone(), n.slots as i64)).collect();
            for (from, to, n) in &p.moves {
                *held.get_mut(from).expect("a giver") -= *n as i64;
                *held.get_mut(to).expect("a taker") += *n as i64;
            }
            prop_assert!(held.values().all(|v| *v >= 0));
            let k = p.primaries.len() as i64;
            for (id, v) in &held {
                if p.primaries.contains(id) {
                    prop_assert!((*v - SLOTS as i64 / k).abs() <= 1, "{id} ends with {v}");
                } else {
                    prop_assert_eq!(*v, 0);
                }
            }
            let linked: BTreeSet<&String> = p.attach.iter().map(|a| &a.0).collect();
            prop_assert_eq!(linked.len(), p.attach.len());
            prop_assert!(p.attach.iter().all(|(r, _)| !p.primaries.contains(r)));
        }
    }
}
