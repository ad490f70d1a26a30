//! Which pod is what: shards, designated primaries and the even slot split.
//!
//! Pods of the Redis StatefulSet are numbered `0..shards*(1+replicas)`. Ordinals below
//! `shards` are the primaries of a cluster created from nothing. After that, roles are read
//! from the cluster, never assumed from ordinals (a failover swaps them; a reshard makes
//! new primaries); the only thing an ordinal still decides is whether a smaller layout
//! keeps the pod (a StatefulSet removes the highest ordinals first).

use std::collections::BTreeSet;

use super::nodes::SLOTS;

/// A Redis pod as the operator found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Pod name, for events and status.
    pub name: String,
    /// `ip:port` it answers on now (a pod that is rescheduled gets a new IP).
    pub addr: String,
    /// StatefulSet ordinal.
    pub ordinal: usize,
}

/// The shape the spec asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub shards: usize,
    pub replicas_per_shard: usize,
}

impl Layout {
    pub fn pods(&self) -> usize {
        self.shards * (1 + self.replicas_per_shard)
    }

    /// The slots of a shard: an even split, the remainder spread over the first shards.
    pub fn slots_of(&self, shard: usize) -> BTreeSet<u16> {
        let n = self.shards as u32;
        let start = (shard as u32 * SLOTS as u32 / n) as u16;
        let end = ((shard as u32 + 1) * SLOTS as u32 / n) as u16;
        (start..end).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_every_slot_exactly_once() {
        for shards in [3, 5, 7, 100] {
            let layout = Layout { shards, replicas_per_shard: 1 };
            let mut all = BTreeSet::new();
            for s in 0..shards {
                let slots = layout.slots_of(s);
                assert!(slots.len() >= SLOTS as usize / shards);
                assert!(all.is_disjoint(&slots));
                all.extend(slots);
            }
            assert_eq!(all.len(), SLOTS as usize);
        }
        let layout = Layout { shards: 3, replicas_per_shard: 2 };
        assert_eq!(layout.pods(), 9);
    }
}
