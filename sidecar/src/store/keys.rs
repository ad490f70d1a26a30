//! The Redis key layout, in one place. Every key of a channel carries the channel as its
//! hash tag (`{<channel>}`), so all of them live in one slot and one Lua script can touch
//! them atomically; the shard channel of sharded pub/sub shares that slot too.

/// The shard channel (SSUBSCRIBE/SPUBLISH) of a client channel: `sf:{<channel>}`.
pub fn shard_channel(channel: &str) -> String {
    format!("sf:{{{channel}}}")
}

/// The client channel of a shard channel, or None for a name that is not one of ours.
pub fn client_channel(shard: &[u8]) -> Option<&str> {
    std::str::from_utf8(shard).ok()?.strip_prefix("sf:{")?.strip_suffix('}')
}

/// The channel's history stream.
pub fn log(channel: &str) -> String {
    format!("sf:{{{channel}}}:log")
}

/// The channel's meta hash (its epoch).
pub fn meta(channel: &str) -> String {
    format!("sf:{{{channel}}}:meta")
}

/// The channel's presence members.
pub fn presence(channel: &str) -> String {
    format!("sf:{{{channel}}}:presence")
}

/// One ephemeral key (`typing`) of one user on a channel.
pub fn ephemeral(channel: &str, key: &str, user: &str) -> String {
    format!("sf:{{{channel}}}:eph:{key}:{user}")
}

/// A publish id a client chose (`"pid"`): the offset and epoch its publication got, kept as
/// long as history, so a retried publish is stored once.
pub fn publish_id(channel: &str, pid: &str) -> String {
    format!("sf:{{{channel}}}:pid:{pid}")
}

/// A session document; its own hash tag, so it lives wherever its id hashes to.
pub fn session(session: &str) -> String {
    format!("sf:session:{{{session}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::slot::key_slot;

    #[test]
    fn every_key_of_a_channel_is_in_its_shard_channel_slot() {
        let slot = key_slot(shard_channel("room:1").as_bytes());
        for k in [log("room:1"), meta("room:1"), presence("room:1"), ephemeral("room:1", "typing", "ada"), publish_id("room:1", "p-7")] {
            assert_eq!(key_slot(k.as_bytes()), slot, "{k}");
        }
        assert_eq!(client_channel(shard_channel("room:1").as_bytes()), Some("room:1"));
        assert_eq!(client_channel(b"other"), None);
        assert_eq!(session("s1"), "sf:session:{s1}");
    }
}
