//! Everything that talks to Redis.
//!
//! - [`topology`]: which node owns which slot (CLUSTER SHARDS, Sentinel, or one node).
//! - [`router`]: runs commands on the owner of a slot, following MOVED/ASK and failovers.
//! - [`subscriber`]: our own sharded pub/sub layer (one connection per node, one
//!   SSUBSCRIBE per channel, re-resolution and resubscription).
//! - [`script`]: Lua scripts (EVALSHA, EVAL on NOSCRIPT) on their keys' slot.
//! - [`resp`], [`slot`]: the wire format and the key-slot hash.
//!
//! All three modes use sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7): a standalone or
//! Sentinel-managed Redis is treated as a one-node cluster that owns every slot, so one
//! code path serves every mode.

pub mod resp;
pub mod router;
pub mod script;
pub mod slot;
pub mod subscriber;
pub mod topology;

use std::sync::Arc;

/// A Redis node address, `host:port`, cheap to clone.
pub type Addr = Arc<str>;

pub use socketfleet_plumbing::redis_conn::{connect, connection_info};
