//! SocketFleet operator.
pub mod build;
pub mod crd;
pub mod crdgen;
pub mod error;
pub mod redis_cluster;
pub mod status;
pub mod validate;
