//! One Redis pod as an admin pass sees it: its connection, node id and `CLUSTER NODES`.

use std::time::Duration;

use redis::FromRedisValue;
use redis::aio::MultiplexedConnection;

use super::layout::Member;
use super::nodes::{NodeLine, ParseError, parse_nodes};

/// Connection settings for the pods.
#[derive(Debug, Clone)]
pub struct Access {
    pub password: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HealError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Nodes(#[from] ParseError),
}

/// One reachable pod and its view.
pub(super) struct Pod {
    pub member: Member,
    conn: MultiplexedConnection,
    pub id: String,
    pub view: Vec<NodeLine>,
    /// `cluster_state` as it reports it (`ok`: it knows an owner for every slot it should).
    pub cluster_state: String,
    /// A replica whose copy is complete and following (`master_link_status:up`); a
    /// replica still loading its first copy cannot keep a publish durable.
    pub in_sync: bool,
    /// Where a replica's replication connects (`master_host:master_port`).
    pub master_addr: Option<String>,
}

impl Pod {
    /// Connects and reads its view: `CLUSTER NODES` (its own id is the `myself` line),
    /// `CLUSTER INFO` and `INFO replication`.
    pub async fn observe(member: &Member, access: &Access) -> Result<Pod, HealError> {
        // The sidecar's connection helper: the same password and timeout handling.
        let conn = socketfleet_plumbing::redis_conn::connect(&member.addr, access.password.as_deref(), access.timeout).await?;
        let run = |args: &[&str]| {
            let mut conn = conn.clone();
            let c = cmd(args);
            async move { c.query_async::<String>(&mut conn).await }
        };
        let view = parse_nodes(&run(&["CLUSTER", "NODES"]).await?)?;
        let id = view.iter().find(|n| n.myself).map(|n| n.id.clone()).unwrap_or_default();
        let cluster_state = info_field(&run(&["CLUSTER", "INFO"]).await?, "cluster_state").unwrap_or("unknown").to_string();
        let replication = run(&["INFO", "replication"]).await?;
        let in_sync = info_field(&replication, "master_link_status") == Some("up");
        let master_addr = match (info_field(&replication, "master_host"), info_field(&replication, "master_port")) {
            (Some(host), Some(port)) => Some(format!("{host}:{port}")),
            _ => None,
        };
        Ok(Pod { member: member.clone(), conn, id, view, cluster_state, in_sync, master_addr })
    }

    pub fn state_ok(&self) -> bool {
        self.cluster_state == "ok"
    }

    pub fn me(&self) -> Option<&NodeLine> {
        self.view.iter().find(|n| n.myself)
    }

    pub fn line(&self, id: &str) -> Option<&NodeLine> {
        self.view.iter().find(|n| n.id == id)
    }

    pub async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, redis::RedisError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await
    }

    /// `host` and `port` of its address, for MEET and MIGRATE.
    pub fn host_port(&self) -> (&str, &str) {
        self.member.addr.rsplit_once(':').unwrap_or((&self.member.addr, "6379"))
    }

    /// `INFO <section>`.
    pub async fn info(&self, section: &str) -> Result<String, redis::RedisError> {
        self.run(&cmd(&["INFO", section])).await
    }
}

/// The value of `field` in an `INFO` or `CLUSTER INFO` reply.
pub(super) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(str::trim)
}

/// A numeric `INFO` field (0 when absent).
pub(super) fn info_number(info: &str, field: &str) -> u64 {
    info_field(info, field).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub(super) fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}
