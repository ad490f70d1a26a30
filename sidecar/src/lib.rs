//! SocketFleet sidecar: the WebSocket edge of a gateway pod.
//!
//! The binary (`main.rs`) only parses configuration and calls [`app::run`]. Everything else
//! lives here so that tests can start the real server on `127.0.0.1:0`:
//!
//! - settings come from `socketfleet_api::settings` (the contract the operator writes).
//! - [`protocol`]: the v1 wire protocol (client frames in, server frames out).
//! - [`offset`]: stream offsets and the gap arithmetic of recovery.
//! - [`auth`]: JWT authentication and channel grants; [`resume_token`]: signed resume tokens.
//! - [`redis`]: topology resolution, the command router and our own sharded subscriber.
//! - [`channels`]: publish, history, presence and ephemeral keys in Redis (one slot per channel).
//! - [`hub`]: local fan-out, one Redis subscription per channel per pod, de-duplication.
//! - [`connection`]: one WebSocket connection: reader, writer, send queue, keepalive.
//! - [`session`]: server-side sessions checkpointed in Redis; [`drain`]: the paced drain on
//!   SIGTERM or `POST /drain`.
//! - [`recovery`]: subscribe with `since`: buffer live, read history, merge, report gaps.
//! - [`server`], [`admin`], [`app_api`]: the listeners (on `socketfleet_plumbing`'s accept loop).
//! - [`metrics`]: the Prometheus registry; [`clock`]: wall-clock milliseconds.

pub mod admin;
pub mod app;
pub mod app_api;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod connection;
pub mod drain;
pub mod hub;
pub mod metrics;
pub mod offset;
pub mod presence;
pub mod protocol;
pub mod recovery;
pub mod redis;
pub mod resume_token;
pub mod server;
pub mod session;
