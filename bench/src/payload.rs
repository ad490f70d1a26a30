//! The benchmark payload: `P<channel>.<seq>.<sent-µs>.` padded with `x` to the requested
//! size. It carries everything the generator needs to check a delivery (which channel,
//! which publication, when it was sent), so every system carries the same bytes and no
//! system needs to echo metadata of its own.

/// What a delivered payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub channel: u32,
    pub seq: u64,
    pub sent_us: u64,
}

pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut s = format!("P{}.{}.{}.", stamp.channel, stamp.seq, stamp.sent_us);
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Finds the payload inside a frame (raw, or as a JSON string in any protocol) and reads it.
pub fn find(frame: &str) -> Option<Stamp> {
    // Raw (the plain ws peer) or the first JSON string that starts with `P`: ids and
    // epochs elsewhere in a frame may contain a `P`, but never right after a quote.
    let start = if frame.starts_with('P') { 0 } else { frame.find("\"P")? + 1 };
    let mut parts = frame[start + 1..].splitn(4, '.');
    let channel = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent_us = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(Stamp { channel, seq, sent_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_any_frame() {
        let stamp = Stamp { channel: 7, seq: 12, sent_us: 3_456_789 };
        let p = encode(stamp, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(find(&p), Some(stamp));
        assert_eq!(find(&format!("42[\"m\",\"{p}\",\"1-0\"]")), Some(stamp));
        assert_eq!(find(&format!("{{\"type\":\"message\",\"data\":\"{p}\"}}")), Some(stamp));
        assert_eq!(find(&format!("{{\"epoch\":\"aPb\",\"data\":\"{p}\"}}")), Some(stamp));
        assert_eq!(find("{\"type\":\"reply\"}"), None);
    }
}
