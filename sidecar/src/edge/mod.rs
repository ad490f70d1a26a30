//! The edge: what faces clients and the pod. The listeners ([`server`] for WebSockets,
//! [`admin`] for probes, status and drains, [`app_api`] for the app container), one
//! connection's transport ([`connection`]) over its shared socket ([`socket`]), its
//! requests (`dispatch.rs`) and writer (`writer.rs`), the wire protocol ([`protocol`]), and who a
//! client is ([`auth`], [`resume_token`]), how long it may stay ([`expiry`]) and the pings
//! that keep it alive ([`keepalive`]).

pub mod admin;
pub mod app_api;
pub mod auth;
pub mod connection;
mod dispatch;
pub mod expiry;
pub mod keepalive;
pub mod protocol;
pub mod resume_token;
pub mod server;
pub mod socket;
mod writer;
