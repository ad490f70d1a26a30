//! Real `redis-server` processes in the layout the spec asks for: a Redis Cluster of
//! `shards × (1 + replicasPerShard)` nodes bootstrapped by the operator's own admin code, a
//! primary with replicas and three Sentinels, or nothing (external).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socketfleet_api::crd::{RedisMode, RedisSpec};
use socketfleet_api::settings::{self, RedisSettings, Secret};
use socketfleet_harness::ports::{try_free_cluster_port, try_free_port};
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::{IN_MEMORY_ARGS, start_anywhere_async};
use socketfleet_harness::wait::poll_until_async;
use socketfleet_operator::redis_cluster::{self, Access, Layout, Member};

/// Redis as the sidecars see it.
pub struct LocalRedis {
    /// Every process started (killed on drop).
    procs: Vec<Proc>,
    /// How the sidecars find it (the sentinel master name included).
    pub sidecar: RedisSettings,
    /// One line for people: what runs where.
    pub summary: String,
}

impl LocalRedis {
    /// Stops every Redis process now.
    pub async fn stop(&mut self) {
        self.procs.clear();
    }
}

const SENTINEL_MASTER: &str = "socketfleet";

/// Starts one redis-server (again on another port when its port was taken meanwhile).
async fn node(dir: &Path, name: &str, password: &str, extra: &[&str], pick: fn() -> std::io::Result<u16>) -> anyhow::Result<(u16, Proc)> {
    // In-memory nodes: the local fleet keeps nothing after it stops.
    let args: Vec<&str> = IN_MEMORY_ARGS.iter().copied().chain(extra.iter().copied()).collect();
    // A directory per attempt: a node that failed to bind leaves nothing the next one reads.
    start_anywhere_async(|port| dir.join(format!("{name}-{port}")), Some(password), &args, pick).await.map_err(|e| anyhow::anyhow!("{e}"))
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let up = poll_until_async(Duration::from_secs(10), || async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() })
        .await;
    anyhow::ensure!(up, "redis-sentinel on port {port} did not start");
    Ok(())
}

/// How the sidecars reach it.
fn sidecar_redis(mode: settings::RedisMode, addrs: Vec<String>, password: Option<&str>) -> RedisSettings {
    RedisSettings { mode, addrs, password: password.map(|p| Secret::Value(p.into())), ..RedisSettings::default() }
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
    let cluster_args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "3000",
        "--cluster-replica-validity-factor",
        "0",
        "--cluster-require-full-coverage",
        "no",
    ];
    for ordinal in 0..layout.pods() {
        let (port, proc) = node(dir, &format!("redis-{ordinal}"), password, &cluster_args, try_free_cluster_port).await?;
        procs.push(proc);
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
        summary: format!("Redis Cluster: {} primaries × {} replicas on {}", layout.shards, layout.replicas_per_shard, addrs.join(" ")),
        sidecar: sidecar_redis(settings::RedisMode::Cluster, addrs, Some(password)),
    })
}

async fn sentinel(spec: &RedisSpec, dir: &Path, password: &str) -> anyhow::Result<LocalRedis> {
    let mut procs = Vec::new();
    let (primary, proc) = node(dir, "redis-0", password, &[], try_free_port).await?;
    procs.push(proc);
    let primary_text = primary.to_string();
    for i in 1..=spec.replicas_per_shard {
        let (_, proc) = node(dir, &format!("redis-{i}"), password, &["--replicaof", "127.0.0.1", &primary_text], try_free_port).await?;
        procs.push(proc);
    }
    let mut sentinels = Vec::new();
    for i in 0..3 {
        let port = try_free_port()?;
        let conf = dir.join(format!("sentinel-{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 3000\nsentinel failover-timeout {SENTINEL_MASTER} 10000\n\
                 sentinel auth-pass {SENTINEL_MASTER} {password}\n"
            ),
        )?;
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-sentinel: {e}; install Redis 7 (`make deps` does it on Debian)"))?;
        procs.push(Proc::new(child, format!("sentinel-{i}")));
        wait_listening(port).await?;
        sentinels.push(format!("127.0.0.1:{port}"));
    }
    Ok(LocalRedis {
        procs,

        summary: format!("Redis primary :{primary} with {} replicas, Sentinels {}", spec.replicas_per_shard, sentinels.join(" ")),
        sidecar: sidecar_redis(settings::RedisMode::Sentinel { master: SENTINEL_MASTER.into() }, sentinels, Some(password)),
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

        summary: format!("external Redis ({}) at {}", ext.mode.as_str(), ext.addresses.join(" ")),
        sidecar: sidecar_redis(ext.sidecar_mode(), ext.addresses.clone(), password.as_deref()),
    })
}

/// Where local runs keep their files.
pub fn work_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("socketfleet-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
