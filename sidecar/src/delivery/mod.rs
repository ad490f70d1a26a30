//! Delivery: getting every acknowledged message to every subscriber exactly once. Local
//! fan-out and de-duplication ([`hub`]), subscribe with `since` and gap reports
//! ([`recovery`], [`offset`]), sessions that survive a pod ([`session`]), the paced
//! drain ([`drain`]) and each connection's bounded send queue ([`send_queue`]).

pub mod drain;
pub mod hub;
pub mod offset;
pub mod recovery;
pub mod send_queue;
pub mod session;
