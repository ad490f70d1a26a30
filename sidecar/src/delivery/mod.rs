//! Delivery: getting every acknowledged message to every subscriber exactly once. Local
//! fan-out and de-duplication ([`hub`]), subscribe with `since` and gap reports
//! ([`recovery`], [`offset`]), sessions that survive a pod ([`session`]) and the paced
//! drain ([`drain`]).

pub mod drain;
pub mod hub;
pub mod offset;
pub mod recovery;
pub mod session;
