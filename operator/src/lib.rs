//! SocketFleet operator: turns `SocketFleet` objects into Redis and gateway fleets.
//!
//! The binary (`main.rs`) parses its settings and runs [`reconcile::run`] while it holds
//! the leader lease. Reconcile is a pipeline of small modules:
//!
//! - [`crd`]: the `SocketFleet` type (the CRD is generated from it: [`crdgen`]);
//! - [`validate`]: the CRD's CEL rules, evaluated here too;
//! - [`build`]: every child object from the spec, pure;
//! - [`apply`]: server-side apply without steady-state writes, orphan removal;
//! - [`redis_cluster`]: Redis Cluster bootstrap and healing over the Redis protocol;
//! - [`status`]: the status derived from what was observed;
//! - [`reconcile`]: the controller that strings them together, with Events;
//! - [`leader`], [`metrics`], [`error`]: leader election, Prometheus metrics, error reasons.

pub mod apply;
pub mod build;
pub mod crd;
pub mod crdgen;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod redis_cluster;
pub mod status;
pub mod validate;
