//! Redis Cluster administration over the Redis protocol only: the operator runs it against
//! its pods, `socketfleet local` against the Redis processes it starts.
//!
//! - [`nodes`]: `CLUSTER NODES` parsed into data;
//! - [`layout`]: shards, the pods a layout keeps and the even slot split;
//! - [`pod`]: one pod's connection and view during a pass;
//! - [`plan`]: the primaries, replicas and slot moves a layout asks for, from the roles
//!   the cluster reports (pure);
//! - [`migrate`]: moving a slot and its keys between primaries;
//! - [`heal`]: one idempotent pass of bootstrap, healing and resharding (meet, forget,
//!   slots, open slots, handovers, replicas, slot moves) and the report behind the status.

pub mod heal;
pub mod layout;
mod migrate;
pub mod nodes;
pub mod plan;
mod pod;

pub use heal::{Action, Report, heal};
pub use layout::{Layout, Member};
pub use pod::{Access, HealError};
