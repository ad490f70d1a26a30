//! Real `redis-server` processes in the layout the spec asks for: a Redis Cluster of
//! `shards × (1 + replicasPerShard)` nodes bootstrapped by the operator's own admin code, a
//! primary with replicas and three Sentinels, or nothing (external).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use socketfleet_api::crd::{RedisMode, RedisSpec};
use socketfleet_api::settings;
use socketfleet_operator::redis_cluster::{self, Access, Layout, Member};
use tokio::process::{Child, Command};

use super::ports::{free_port, free_port_pair};

/// Redis as the sidecars see it.
pub struct LocalRedis {
    /// Every process started (killed on drop).
    procs: Vec<Child>,
    /// How the sidecars find it (the sentinel master name included).
    pub mode: settings::RedisMode,
    pub addrs: Vec<String>,
    pub password: Option<String>,
    /// One line for people: what runs where.
    pub summary: String,
}

impl LocalRedis {
    /// Stops every Redis process now.
    pub async fn stop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill().await;
        }
        self.procs.clear();
    }
}

const SENTINEL_MASTER: &str = "socketfleet";

fn spawn(program: &str, args: &[String], dir: &Path) -> anyhow::Result<Child> {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {program}: {e}; install Redis 7 (`make deps` does it on Debian)"))
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "redis on port {port} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn base_args(port: u16, dir: &Path, password: &str) -> Vec<String> {
    let mut a: Vec<String> =
        ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from).into();
    a.extend(["--requirepass", password, "--masterauth", password].map(String::from));
    a.push("--dir".into());
    a.push(dir.display().to_string());
    a
}

/// Starts Redis for `spec` under `dir`.
pub async fn start(spec: &RedisSpec, dir: &Path, password: &str) -> anyhow::Result<LocalRedis> {
    match spec.mode {
        RedisMode::Cluster => cluster(spec, dir, password).await,
        RedisMode::Sentinel => sentinel(spec, dir, password).await,
        RedisMode::External => external(spec),
    }
}

async fn cluster(spec: &RedisSpec, dir: &Path, password: &str) -> anyhow::Result<LocalRedis> {
    let layout = Layout { shards: spec.shard_count() as usize, replicas_per_shard: spec.replicas_per_shard as usize };
    let mut procs = Vec::new();
    let mut members = Vec::new();
    for ordinal in 0..layout.pods() {
        let port = free_port_pair()?;
        let node_dir = dir.join(format!("redis-{ordinal}"));
        std::fs::create_dir_all(&node_dir)?;
        let mut args = base_args(port, &node_dir, password);
        args.extend(
            ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "3000"].map(String::from),
        );
        args.extend(["--cluster-replica-validity-factor", "0", "--cluster-require-full-coverage", "no"].map(String::from));
        procs.push(spawn("redis-server", &args, &node_dir)?);
        wait_listening(port).await?;
        members.push(Member { name: format!("redis-{ordinal}"), addr: format!("127.0.0.1:{port}"), ordinal });
    }
    // The operator's admin code, pass after pass, exactly as in Kubernetes.
    let access = Access { password: Some(password.to_string()), timeout: Duration::from_secs(2) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = redis_cluster::heal(layout, &members, &access).await?;
        if report.converged && report.cluster_state == "ok" {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the local Redis Cluster did not form in 60 s: {report:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let addrs: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
    Ok(LocalRedis {
        procs,
        mode: settings::RedisMode::Cluster,
        summary: format!("Redis Cluster: {} primaries × {} replicas on {}", layout.shards, layout.replicas_per_shard, addrs.join(" ")),
        addrs,
        password: Some(password.to_string()),
    })
}

async fn sentinel(spec: &RedisSpec, dir: &Path, password: &str) -> anyhow::Result<LocalRedis> {
    let mut procs = Vec::new();
    let primary = free_port()?;
    let mut ports = Vec::new();
    for i in 0..=spec.replicas_per_shard {
        let port = if i == 0 { primary } else { free_port()? };
        let node_dir = dir.join(format!("redis-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        let mut args = base_args(port, &node_dir, password);
        if i > 0 {
            args.extend(["--replicaof".to_string(), "127.0.0.1".into(), primary.to_string()]);
        }
        procs.push(spawn("redis-server", &args, &node_dir)?);
        wait_listening(port).await?;
        ports.push(port);
    }
    let mut sentinels = Vec::new();
    for i in 0..3 {
        let port = free_port()?;
        let conf = dir.join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 3000\nsentinel failover-timeout {SENTINEL_MASTER} 10000\n\
                 sentinel auth-pass {SENTINEL_MASTER} {password}\n"
            ),
        )?;
        procs.push(spawn("redis-sentinel", &[conf.display().to_string()], dir)?);
        wait_listening(port).await?;
        sentinels.push(format!("127.0.0.1:{port}"));
    }
    Ok(LocalRedis {
        procs,
        mode: settings::RedisMode::Sentinel { master: SENTINEL_MASTER.into() },
        summary: format!("Redis primary :{primary} with {} replicas, Sentinels {}", spec.replicas_per_shard, sentinels.join(" ")),
        addrs: sentinels,
        password: Some(password.to_string()),
    })
}

fn external(spec: &RedisSpec) -> anyhow::Result<LocalRedis> {
    let ext = spec.external.as_ref().ok_or_else(|| anyhow::anyhow!("redis.mode: external needs redis.external"))?;
    // A Kubernetes Secret cannot be read here: the password comes from the environment.
    let password = match &ext.password_secret_ref {
        Some(r) => Some(std::env::var("SOCKETFLEET_REDIS_PASSWORD").map_err(|_| {
            anyhow::anyhow!(
                "redis.external.passwordSecretRef names Secret {}; locally, put the password in SOCKETFLEET_REDIS_PASSWORD",
                r.name
            )
        })?),
        None => None,
    };
    Ok(LocalRedis {
        procs: Vec::new(),
        mode: ext.sidecar_mode(),
        summary: format!("external Redis ({}) at {}", ext.mode.as_str(), ext.addresses.join(" ")),
        addrs: ext.addresses.clone(),
        password,
    })
}

/// Where local runs keep their files.
pub fn work_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("socketfleet-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
