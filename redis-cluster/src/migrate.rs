//! Moving slots between primaries with `MIGRATE`, the way every Redis since 3.0 can: the
//! target imports, the source migrates, keys move in batches, then the target, the source
//! and every other primary are told the new owner (target first, so that the slot always
//! has an owner that accepts it). Interrupted at any step, the slot is left open
//! (`[slot->-target]`), and the next pass's open-slot phase finishes or rolls it back.
//!
//! While a slot is open, clients are redirected with ASK for keys already moved and get
//! TRYAGAIN for commands spanning moved and unmoved keys; the sidecar's router follows
//! both, and its subscriber re-subscribes where the slot went (`sunsubscribe`, MOVED) and
//! backfills from the channel's stream, which moves with the slot.
//!
//! Redis 8.4's `CLUSTER MIGRATION` and Valkey 9's `CLUSTER MIGRATESLOTS` move slots
//! atomically; they are not used yet (the Redis this project tests with is Debian's 7.0).

use std::time::{Duration, Instant};

use super::pod::{Access, Pod, cmd, info_number};

/// Keys per `MIGRATE` call.
const BATCH: usize = 100;
/// A receiver is not filled beyond this share of its `maxmemory`.
const MEMORY_CEILING: f64 = 0.9;

/// Moves the keys of `slot` still on `source` to `target`; returns how many moved.
pub(super) async fn move_keys(source: &Pod, target: &Pod, slot: u16, access: &Access) -> Result<usize, redis::RedisError> {
    let s = slot.to_string();
    let (host, port) = target.host_port();
    let timeout = access.timeout.as_millis().to_string();
    let mut moved = 0;
    // Bounded: at most 16384 rounds of BATCH keys; a slot rarely holds more.
    for _ in 0..16384 {
        let keys: Vec<String> = source.run(&cmd(&["CLUSTER", "GETKEYSINSLOT", &s, &BATCH.to_string()])).await?;
        if keys.is_empty() {
            break;
        }
        let mut migrate = cmd(&["MIGRATE", host, port, "", "0", &timeout, "REPLACE"]);
        if let Some(p) = &access.password {
            migrate.arg("AUTH").arg(p);
        }
        migrate.arg("KEYS").arg(&keys);
        source.run::<()>(&migrate).await?;
        moved += keys.len();
    }
    Ok(moved)
}

/// Tells the target, then every other primary in `others`, that `target` owns `slot`.
pub(super) async fn assign(slot: u16, target: &Pod, others: &[&Pod]) -> Result<(), redis::RedisError> {
    let s = slot.to_string();
    let announce = cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &target.id]);
    target.run::<()>(&announce).await?;
    // The others at once: each writes its nodes.conf (an fsync) before it answers.
    let told = futures_util::future::join_all(others.iter().filter(|p| p.id != target.id).map(|p| p.run::<()>(&announce))).await;
    told.into_iter().collect()
}

/// Moves one slot with its keys from `source` to `target`; `primaries` are told the new
/// owner. Returns the keys moved.
async fn move_slot(source: &Pod, target: &Pod, primaries: &[&Pod], slot: u16, access: &Access) -> Result<usize, redis::RedisError> {
    let s = slot.to_string();
    target.run::<()>(&cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &source.id])).await?;
    source.run::<()>(&cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &target.id])).await?;
    let keys = move_keys(source, target, slot, access).await?;
    assign(slot, target, primaries).await?;
    Ok(keys)
}

/// Why `target` cannot take `slots` more slots from `source` now, if it cannot: only when
/// it has a `maxmemory`, estimated from the source's memory per slot.
pub(super) async fn memory_check(source: &Pod, target: &Pod, slots: usize) -> Result<Option<String>, redis::RedisError> {
    let memory = target.info("memory").await?;
    let max = info_number(&memory, "maxmemory");
    let source_slots = source.me().map_or(0, |me| me.slots.len());
    if max == 0 || source_slots == 0 {
        return Ok(None);
    }
    let used = info_number(&memory, "used_memory");
    let incoming = info_number(&source.info("memory").await?, "used_memory") as f64 * slots as f64 / source_slots as f64;
    let after = used as f64 + incoming;
    Ok((after > max as f64 * MEMORY_CEILING).then(|| {
        format!(
            "would use {:.0} MiB of its {:.0} MiB maxmemory after taking {slots} slots (more than {:.0}%)",
            after / 1048576.0,
            max as f64 / 1048576.0,
            MEMORY_CEILING * 100.0
        )
    }))
}

/// Moves `slots` (last first) from `source` to `target` until `deadline`; returns the
/// slots and keys moved, and the error that stopped it early, if one did (its slot is left
/// open for the next pass to close).
pub(super) async fn move_slots(
    source: &Pod,
    target: &Pod,
    primaries: &[&Pod],
    slots: &[u16],
    access: &Access,
    deadline: Instant,
) -> (usize, usize, Option<redis::RedisError>) {
    let (mut moved, mut keys) = (0, 0);
    for &slot in slots.iter().rev() {
        if Instant::now() > deadline {
            break;
        }
        match move_slot(source, target, primaries, slot, access).await {
            Ok(k) => (moved, keys) = (moved + 1, keys + k),
            Err(e) => return (moved, keys, Some(e)),
        }
    }
    (moved, keys, None)
}

/// Pairs of primaries moving slots at once.
pub const PARALLEL_MOVES: usize = 4;
/// How long one pass may spend moving slots before it reports progress.
pub const PASS_BUDGET: Duration = Duration::from_secs(5);
