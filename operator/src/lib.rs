//! SocketFleet operator.
pub mod build;
pub mod crd;
pub mod crdgen;
pub mod redis_cluster;
pub mod validate;
