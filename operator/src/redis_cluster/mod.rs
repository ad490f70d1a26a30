//! Redis Cluster administration from the operator, over the Redis protocol only.
//!
//! - [`nodes`]: `CLUSTER NODES` parsed into data;
//! - [`layout`]: shards, designated primaries and the even slot split;
//! - [`heal`]: one idempotent pass of bootstrap and healing (meet, forget, slots,
//!   replicas, open slots) and the topology report behind the fleet's status.

pub mod heal;
pub mod layout;
pub mod nodes;

pub use heal::{Access, Action, HealError, Report, heal};
pub use layout::{Layout, Member};
