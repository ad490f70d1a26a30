//! The store: what a channel keeps in Redis. History and publish ([`channels`]), presence
//! and ephemeral keys ([`presence`]), and the key layout they share ([`keys`]).

pub mod channels;
pub mod keys;
pub mod presence;
