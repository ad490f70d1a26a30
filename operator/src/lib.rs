//! SocketFleet operator: turns `SocketFleet` objects into Redis and gateway fleets.
//!
//! The binary (`main.rs`) parses its settings and runs [`reconcile::run`] while it holds
//! the leader lease. Reconcile is a pipeline of small modules:
//!
//! - `socketfleet_api::crd` and `socketfleet_api::admission`: the `SocketFleet` type and the
//!   CRD's CEL rules, evaluated here too (the CRD YAML is generated from it: [`crdgen`]);
//! - [`children`]: every child object from the spec, pure ([`children::build`]);
//! - [`apply`]: server-side apply without steady-state writes, orphan removal;
//! - [`redis_cluster`] (the `socketfleet-redis-cluster` crate, which `socketfleet local`
//!   shares): Redis Cluster bootstrap, healing and resharding over the Redis protocol;
//!   [`operations`]: the journal of reshards in `status.operations`;
//! - [`redis_sentinel`]: Sentinel mode's repairs (re-MONITOR, RESET, moving the primary off a
//!   pod being removed); Sentinel alone decides failovers;
//! - [`generated`]: generated Secret values, never rotated under running pods;
//! - [`observe`]: what the children report (gateway pods' `/status`, Redis);
//! - [`autoscaler`]: the builtin connection autoscaler's step (decide, drain, remove);
//!   [`rebalance`]: moving connections onto pods below the mean after a scale-up;
//! - [`status`]: the status derived from what was observed;
//! - [`reconcile`]: the controller that strings them together; [`events`]: its Events;
//! - [`leader`], [`metrics`], [`error`]: leader election, Prometheus metrics, error reasons;
//!   [`fleet_metrics`]: the fleets' live connections for HPA/KEDA.

pub mod apply;
pub mod autoscaler;
pub mod children;
pub mod crdgen;
pub mod error;
pub mod events;
pub mod fleet_metrics;
pub mod generated;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod operations;
pub mod rebalance;
pub mod reconcile;
pub use socketfleet_redis_cluster as redis_cluster;
pub mod redis_sentinel;
pub mod status;
