//! The `socketfleet` command line.
//!
//! - [`fleet_file`]: a `SocketFleet` YAML file read with the operator's types and rules;
//! - [`local`]: `socketfleet local`, the fleet on this machine.

pub mod fleet_file;
pub mod local;
pub mod unknown_fields;
