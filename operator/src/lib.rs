//! SocketFleet operator.
pub mod crd;
pub mod crdgen;
pub mod validate;
