//! SocketFleet sidecar: the WebSocket edge of a gateway pod.
//!
//! The binary (`main.rs`) only parses configuration (`socketfleet_api::settings`, the
//! contract the operator writes) and calls [`app::run`]. Everything else lives here so that
//! tests can start the real server on `127.0.0.1:0`. The folders follow the data path, from
//! the client to Redis:
//!
//! - [`edge`]: listeners (WebSocket, admin, app API), one connection's transport, the wire
//!   protocol, authentication and resume tokens;
//! - [`delivery`]: local fan-out and de-duplication, recovery with `since` and gaps,
//!   sessions, the paced drain;
//! - [`store`]: what a channel keeps in Redis (history, presence, ephemeral keys) and the
//!   one key layout;
//! - [`backend`]: talking to Redis: topology, the command router, our sharded subscriber,
//!   Lua scripts, RESP and key slots;
//! - [`app`]: wiring and shutdown; [`metrics`]: the Prometheus registry; [`clock`]:
//!   wall-clock milliseconds; [`slices`]: periodic work over every connection, spread
//!   over its interval.

pub mod app;
pub mod backend;
pub mod clock;
pub mod delivery;
pub mod edge;
pub mod metrics;
pub mod slices;
pub mod store;
