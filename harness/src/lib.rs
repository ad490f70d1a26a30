//! One harness for the tests that start real processes (the sidecar's L1 tests, the
//! operator's Redis admin and entrypoint tests), so that none of them carries its own copy.
//!
//! - [`cluster_keys`]: a known set of keys written into a Redis Cluster and counted back;
//! - [`ports`]: free loopback ports, and cluster ports whose bus port is free too;
//! - [`process`]: a child process killed on drop, SIGTERM with an async wait;
//! - [`redis`]: redis-server nodes that are started again on another port when the chosen
//!   one was taken between the pick and the bind, and `redis-cli`;
//! - [`wait`]: bounded polling for synchronous callers (async callers, such as
//!   [`redis::spawn_async`], wait on the runtime's timer themselves).

pub mod cluster_keys;
pub mod ports;
pub mod process;
pub mod redis;
pub mod wait;
