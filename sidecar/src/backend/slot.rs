//! Redis Cluster key slots: CRC16 (XMODEM) of the hash tag, modulo 16384.

/// The number of slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot of `key`, honouring `{hash tags}` exactly as Redis does.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(tagged) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
    }

    #[test]
    fn hash_tags_pin_keys_to_one_slot() {
        assert_eq!(key_slot(b"sf:{room:1}:log"), key_slot(b"room:1"));
        assert_eq!(key_slot(b"sf:{room:1}:meta"), key_slot(b"sf:{room:1}"));
        // An empty tag hashes the whole key, like Redis.
        assert_eq!(key_slot(b"a{}b"), crc16(b"a{}b") % SLOTS);
    }
}
