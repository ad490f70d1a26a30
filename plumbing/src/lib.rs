//! Low-level I/O shared by the operator, the sidecar and `socketfleet local`, so that neither
//! binary depends on the other for it.
//!
//! - [`http_server`]: the one HTTP/1 accept loop behind every listener;
//! - [`http_client`]: one bounded HTTP/1 request, for admin endpoints (JSON or text);
//! - [`redis_conn`]: a Redis connection with timeouts and the password applied.

pub mod http_client;
pub mod http_server;
pub mod redis_conn;
