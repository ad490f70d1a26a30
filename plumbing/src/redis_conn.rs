//! A Redis command connection with connect and response timeouts and the password applied.

use std::time::Duration;

/// Connection details for a node, `host:port`, with the password applied.
pub fn connection_info(addr: &str, password: Option<&str>) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.trim_start_matches('[').trim_end_matches(']').to_string(), p)))
        .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "address is not host:port")))?;
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    Ok((host, port).into_connection_info()?.set_redis_settings(settings))
}

/// Opens a multiplexed command connection with connect and response timeouts.
pub async fn connect(addr: &str, password: Option<&str>, timeout: Duration) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(connection_info(addr, password)?)?;
    let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    client.get_multiplexed_async_connection_with_config(&config).await
}
