//! Everything that talks to Redis.
//!
//! - [`topology`]: which node owns which slot (CLUSTER SHARDS, Sentinel, or one node).
//! - [`router`]: runs commands on the owner of a slot, following MOVED/ASK and failovers.
//! - [`subscriber`]: our own sharded pub/sub layer (one connection per node, one
//!   SSUBSCRIBE per channel, re-resolution and resubscription).
//! - [`script`]: Lua scripts (EVALSHA, EVAL on NOSCRIPT) on their keys' slot.
//! - [`resp`], [`slot`]: the wire format and the key-slot hash.
//!
//! All three modes use sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7): a standalone or
//! Sentinel-managed Redis is treated as a one-node cluster that owns every slot, so one
//! code path serves every mode.

pub mod resp;
pub mod router;
pub mod script;
pub mod slot;
pub mod subscriber;
pub mod topology;

use std::sync::Arc;

/// A Redis node address, `host:port`, cheap to clone.
pub type Addr = Arc<str>;

/// Connection details for a node, with the password applied.
pub fn connection_info(addr: &str, password: Option<&str>) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
        .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "address is not host:port")))?;
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    Ok((host, port).into_connection_info()?.set_redis_settings(settings))
}

/// Opens a multiplexed command connection with connect and response timeouts.
pub async fn connect(
    addr: &str,
    password: Option<&str>,
    timeout: std::time::Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(connection_info(addr, password)?)?;
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    client.get_multiplexed_async_connection_with_config(&config).await
}
