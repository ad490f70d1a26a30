//! Stream offsets and the arithmetic of recovery.
//!
//! Every publication is a Redis Stream entry whose id the publish script chooses as
//! `<ms>-<seq>`: `ms` is the server clock (never going backwards) and `seq` counts the
//! channel's publications within its epoch, starting at 1. Because `seq` has no holes, the
//! sidecar can tell exactly how many messages a client missed when history was trimmed.

use std::fmt;
use std::str::FromStr;

/// A Redis Stream entry id, `<ms>-<seq>`; ordered like Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset {
    pub ms: u64,
    pub seq: u64,
}

impl Offset {
    pub const ZERO: Offset = Offset { ms: 0, seq: 0 };
    /// No part of an offset this server issues goes past 2^53 (a Redis clock in ms, a
    /// count of publications), which also keeps both exact as JavaScript numbers. Larger
    /// ones are refused as input, so offset arithmetic never wraps and no Redis range
    /// command is handed an id it rejects.
    pub const MAX_PART: u64 = 1 << 53;

    /// The offset right after this one within its millisecond.
    pub fn next(self) -> Offset {
        Offset { ms: self.ms, seq: self.seq.saturating_add(1) }
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The offset string was not `<ms>-<seq>` with both parts at most [`Offset::MAX_PART`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset must look like <ms>-<seq>, e.g. \"1700000000000-42\", each part at most 2^53")]
pub struct BadOffset;

impl FromStr for Offset {
    type Err = BadOffset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(BadOffset)?;
        let part = |p: &str| p.parse::<u64>().ok().filter(|v| *v <= Offset::MAX_PART).ok_or(BadOffset);
        Ok(Offset { ms: part(ms)?, seq: part(seq)? })
    }
}

/// Messages a client can no longer receive: everything strictly after `from` and strictly
/// before `to` (both offsets), `missed` of them when the count is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub from: Offset,
    pub to: Offset,
    /// Known when both ends are in the same epoch; `None` after an epoch change.
    pub missed: Option<u64>,
}

/// What the client has: the last offset it received and the epoch it belonged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub offset: Offset,
    pub epoch: String,
}

/// Decides whether a client at `since` can be caught up from history whose oldest retained
/// entry is `first` (None: no entries retained) and whose newest is `last`, in `epoch`.
///
/// Returns the gap to report, if any. Within one epoch the gap is exact because sequence
/// numbers have no holes; across epochs the old stream is gone, so everything after
/// `since` up to the first retained entry of the new epoch is reported missing.
pub fn gap_for(since: &Position, epoch: &str, first: Option<Offset>, last: Offset) -> Option<Gap> {
    if since.epoch != epoch {
        let to = first.unwrap_or(last.next());
        return Some(Gap { from: since.offset, to, missed: None });
    }
    match first {
        // Everything after `since` is retained when the oldest entry directly follows it.
        Some(first) if first.seq > since.offset.seq.saturating_add(1) => {
            Some(Gap { from: since.offset, to: first, missed: Some(first.seq - since.offset.seq - 1) })
        }
        Some(_) => None,
        // No entries retained but the epoch has moved past `since`: all of them were trimmed
        // or expired; the next publication is the first the client can get.
        None if last.seq > since.offset.seq => Some(Gap { from: since.offset, to: last.next(), missed: Some(last.seq - since.offset.seq) }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(ms: u64, seq: u64) -> Offset {
        Offset { ms, seq }
    }

    fn pos(ms: u64, seq: u64, epoch: &str) -> Position {
        Position { offset: o(ms, seq), epoch: epoch.into() }
    }

    #[test]
    fn parses_and_prints_round_trip() {
        let off: Offset = "1700000000000-42".parse().expect("valid offset");
        assert_eq!(off, o(1_700_000_000_000, 42));
        assert_eq!(off.to_string(), "1700000000000-42");
        assert!("42".parse::<Offset>().is_err());
        assert!("a-1".parse::<Offset>().is_err());
        assert!("1-".parse::<Offset>().is_err());
        assert!("-1-2".parse::<Offset>().is_err());
        assert!("18446744073709551615-18446744073709551615".parse::<Offset>().is_err(), "past 2^53");
        assert!(format!("1-{}", Offset::MAX_PART + 1).parse::<Offset>().is_err());
        assert_eq!(format!("{}-1", Offset::MAX_PART).parse::<Offset>(), Ok(o(Offset::MAX_PART, 1)));
    }

    #[test]
    fn orders_like_redis() {
        assert!(o(1, 9) < o(2, 1));
        assert!(o(2, 1) < o(2, 2));
    }

    #[test]
    fn no_gap_when_next_entry_is_retained() {
        assert_eq!(gap_for(&pos(5, 10, "e"), "e", Some(o(6, 11)), o(9, 20)), None);
        assert_eq!(gap_for(&pos(5, 10, "e"), "e", Some(o(1, 3)), o(9, 20)), None);
    }

    #[test]
    fn exact_gap_when_history_was_trimmed() {
        let gap = gap_for(&pos(5, 10, "e"), "e", Some(o(7, 31)), o(9, 40)).expect("a gap");
        assert_eq!(gap, Gap { from: o(5, 10), to: o(7, 31), missed: Some(20) });
    }

    #[test]
    fn gap_when_everything_expired_but_counter_moved() {
        let gap = gap_for(&pos(5, 10, "e"), "e", None, o(9, 12)).expect("a gap");
        assert_eq!(gap, Gap { from: o(5, 10), to: o(9, 13), missed: Some(2) });
        assert_eq!(gap_for(&pos(5, 12, "e"), "e", None, o(9, 12)), None);
    }

    #[test]
    fn epoch_change_is_always_a_gap_of_unknown_size() {
        let gap = gap_for(&pos(5, 10, "old"), "new", Some(o(8, 1)), o(9, 3)).expect("a gap");
        assert_eq!(gap, Gap { from: o(5, 10), to: o(8, 1), missed: None });
    }
}
