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
    /// Its `cluster_state` is `ok`: it knows an owner for every slot it should.
    pub state_ok: bool,
    /// A replica whose copy is complete and following (`master_link_status:up`); a
    /// replica still loading its first copy cannot keep a publish durable.
    pub in_sync: bool,
    /// Where a replica's replication connects (`master_host:master_port`).
    pub master_addr: Option<String>,
}

impl Pod {
    pub async fn observe(member: &Member, access: &Access) -> Result<Pod, HealError> {
        // The sidecar's connection helper: the same password and timeout handling.
        let conn = socketfleet_plumbing::redis_conn::connect(&member.addr, access.password.as_deref(), access.timeout).await?;
        let mut pod =
            Pod { member: member.clone(), conn, id: String::new(), view: Vec::new(), state_ok: false, in_sync: false, master_addr: None };
        pod.id = pod.run(&cmd(&["CLUSTER", "MYID"])).await?;
        let nodes: String = pod.run(&cmd(&["CLUSTER", "NODES"])).await?;
        pod.view = parse_nodes(&nodes)?;
        let info: String = pod.run(&cmd(&["CLUSTER", "INFO"])).await?;
        pod.state_ok = info.lines().any(|l| l.trim() == "cluster_state:ok");
        let replication: String = pod.run(&cmd(&["INFO", "replication"])).await?;
        pod.in_sync = replication.lines().any(|l| l.trim() == "master_link_status:up");
        let field = |name: &str| replication.lines().find_map(|l| l.trim().strip_prefix(name).map(str::to_string));
        if let (Some(host), Some(port)) = (field("master_host:"), field("master_port:")) {
            pod.master_addr = Some(format!("{host}:{port}"));
        }
        Ok(pod)
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

    /// A field of `INFO <section>` as a number (0 when absent).
    pub async fn info_number(&self, section: &str, field: &str) -> Result<u64, redis::RedisError> {
        let info: String = self.run(&cmd(&["INFO", section])).await?;
        let prefix = format!("{field}:");
        Ok(info.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0))
    }
}

pub(super) fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}
