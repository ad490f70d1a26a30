//! The contract between SocketFleet's parts, defined once.
//!
//! - [`duration`]: the one duration type, with its bounds in its type;
//! - [`settings`]: the sidecar's settings, written by the operator and local mode
//!   ([`settings::SidecarSettings::to_env`]) and parsed by the sidecar;
//! - [`admin`]: the JSON of the sidecar's admin endpoints;
//! - [`autoscale`]: the connection autoscaler's decision (the operator's and local mode's);
//! - [`crd`] and [`admission`] (feature `crd`): the `SocketFleet` resource, its schema, and
//!   the CEL rules the API server and the operator both evaluate.
//!
//! The sidecar builds without the `crd` feature, so it does not compile the Kubernetes types.

pub mod admin;
pub mod autoscale;
pub mod duration;
pub mod settings;

#[cfg(feature = "crd")]
pub mod admission;
#[cfg(feature = "crd")]
pub mod crd;
#[cfg(feature = "crd")]
pub mod from_spec;
