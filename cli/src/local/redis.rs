//! Real `redis-server` processes in the layout the spec asks for: a Redis Cluster of
//! `shards × (1 + replicasPerShard)` nodes bootstrapped by the operator's own admin code, a
//! primary with replicas and three Sentinels, or nothing (external). Each process is
//! supervised as a StatefulSet pod's container is: one that exits on its own (killed,
//! crashed) is started again on its port from its own directory, so a cluster node keeps
//! its identity (`nodes.conf`) and rejoins.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socketfleet_api::autoscale::plural;
use socketfleet_api::crd::{ExternalRedisSpec, RedisMode, RedisSpec};
use socketfleet_api::settings::{self, RedisSettings, Secret};
use socketfleet_harness::ports::{try_free_cluster_port, try_free_port};
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::{IN_MEMORY_ARGS, redis_cli_async, spawn_async, start_anywhere_async};
use socketfleet_harness::wait::poll_until_async;
use socketfleet_redis_cluster::{self as redis_cluster, Access, Layout, Member};

/// Redis as the sidecars see it.
pub struct LocalRedis {
    /// Every process started (killed on drop).
    nodes: Vec<Node>,
    password: String,
    /// How the sidecars find it (the sentinel master name included).
    pub sidecar: RedisSettings,
    /// One line for people: what runs where.
    pub summary: String,
}

/// One supervised process: a redis-server or a redis-sentinel.
struct Node {
    name: String,
    port: u16,
    how: Launch,
    /// None while it is down.
    proc: Option<Proc>,
    down_since: Option<Instant>,
}

enum Launch {
    /// redis-server in `dir` with `args`.
    Server { dir: PathBuf, args: Vec<String> },
    /// redis-sentinel on its config file (which Sentinel rewrites as it learns).
    Sentinel { conf: PathBuf },
}

/// A Redis process as `/fleet.json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub addr: String,
    /// Its process id; None while it is down.
    pub pid: Option<u32>,
}

impl LocalRedis {
    /// Stops every Redis process now.
    pub async fn stop(&mut self) {
        self.nodes.clear();
    }

    pub fn view(&self) -> Vec<NodeView> {
        self.nodes
            .iter()
            .map(|n| NodeView { name: n.name.clone(), addr: format!("127.0.0.1:{}", n.port), pid: n.proc.as_ref().map(|p| p.child.id()) })
            .collect()
    }

    /// Starts again, on its port, every process that has been down for `restart_after`;
    /// one line per thing done, for people.
    pub async fn supervise(&mut self, restart_after: Duration) -> Vec<String> {
        let mut said = Vec::new();
        for n in &mut self.nodes {
            if let Some(status) = n.proc.as_mut().and_then(Proc::exited) {
                n.proc = None;
                n.down_since = Some(Instant::now());
                said.push(format!("  ! {} (port {}) exited ({status}); starting it again in {restart_after:?}", n.name, n.port));
            }
            let due = n.down_since.is_some_and(|t| t.elapsed() >= restart_after);
            if n.proc.is_none() && due {
                match n.launch(&self.password).await {
                    Ok(p) => {
                        n.proc = Some(p);
                        n.down_since = None;
                        said.push(format!("  ! {} is running again on port {}", n.name, n.port));
                    }
                    Err(e) => {
                        n.down_since = Some(Instant::now());
                        said.push(format!("  ! {} did not start again ({e}); trying again in {restart_after:?}", n.name));
                    }
                }
            }
        }
        said
    }
}

impl Node {
    async fn launch(&self, password: &str) -> anyhow::Result<Proc> {
        match &self.how {
            Launch::Server { dir, args } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                spawn_async(dir, self.port, Some(password), &args).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Launch::Sentinel { conf } => {
                let log = conf.with_extension("log");
                // In the guard's process group (`guard.rs`), as every child of local mode.
                let child = socketfleet_harness::process::detached(&mut Command::new("redis-sentinel"))
                    .arg(conf)
                    .arg("--logfile")
                    .arg(&log)
                    .current_dir(conf.parent().unwrap_or(Path::new(".")))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| anyhow::anyhow!("cannot start redis-sentinel: {e}; install Redis 7 (`make deps` does it on Debian)"))?;
                let p = Proc::new(child, self.name.clone());
                wait_listening(self.port).await?;
                Ok(p)
            }
        }
    }
}

const SENTINEL_MASTER: &str = "socketfleet";

/// Starts one redis-server (again on another port when its port was taken meanwhile).
async fn node(dir: &Path, name: &str, password: &str, extra: &[&str], pick: fn() -> std::io::Result<u16>) -> anyhow::Result<Node> {
    // In-memory nodes: the local fleet keeps nothing after it stops. Its log beside the
    // sidecars' (`--keep-logs` keeps them).
    let logfile = dir.join(format!("{name}.log")).display().to_string();
    let args: Vec<&str> = IN_MEMORY_ARGS.iter().copied().chain(extra.iter().copied()).chain(["--logfile", &logfile]).collect();
    // A directory per attempt: a node that failed to bind leaves nothing the next one reads.
    let dir_for = |port: u16| dir.join(format!("{name}-{port}"));
    let (port, proc) = start_anywhere_async(dir_for, Some(password), &args, pick).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let how = Launch::Server { dir: dir_for(port), args: args.iter().map(|a| a.to_string()).collect() };
    Ok(Node { name: name.into(), port, how, proc: Some(proc), down_since: None })
}

/// Waits until every replica among `nodes` has finished its first sync with its primary:
/// before that a durable publish cannot be confirmed, so the fleet is not ready to serve
/// one (a fresh `examples/chat.yaml` fleet answered its first publishes with timeouts).
async fn in_sync(nodes: &[Node], password: &str) -> anyhow::Result<()> {
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let synced = poll_until_async(Duration::from_secs(30), || {
        let ports = ports.clone();
        async move {
            for port in ports {
                let info = redis_cli_async(port, Some(password), &["INFO", "replication"]).await;
                let replica = info.contains("role:slave");
                if !info.contains("role:") || (replica && !info.contains("master_link_status:up")) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    anyhow::ensure!(synced, "the local Redis replicas did not finish their first sync in 30 s");
    Ok(())
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
    let mut nodes = Vec::new();
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
        let n = node(dir, &format!("redis-{ordinal}"), password, &cluster_args, try_free_cluster_port).await?;
        members.push(Member { name: n.name.clone(), addr: format!("127.0.0.1:{}", n.port), ordinal });
        nodes.push(n);
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
    in_sync(&nodes, password).await?;
    let addrs: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
    Ok(LocalRedis {
        nodes,
        password: password.into(),
        summary: format!(
            "Redis Cluster: {} × {} on {}",
            plural(layout.shards as u64, "primary"),
            plural(layout.replicas_per_shard as u64, "replica"),
            addrs.join(" ")
        ),
        sidecar: sidecar_redis(settings::RedisMode::Cluster, addrs, Some(password)),
    })
}

async fn sentinel(spec: &RedisSpec, dir: &Path, password: &str) -> anyhow::Result<LocalRedis> {
    let mut nodes = vec![node(dir, "redis-0", password, &[], try_free_port).await?];
    let primary = nodes[0].port;
    let primary_text = primary.to_string();
    for i in 1..=spec.replicas_per_shard {
        nodes.push(node(dir, &format!("redis-{i}"), password, &["--replicaof", "127.0.0.1", &primary_text], try_free_port).await?);
    }
    in_sync(&nodes, password).await?;
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
        let mut n = Node { name: format!("sentinel-{i}"), port, how: Launch::Sentinel { conf }, proc: None, down_since: None };
        n.proc = Some(n.launch(password).await?);
        nodes.push(n);
        sentinels.push(format!("127.0.0.1:{port}"));
    }
    Ok(LocalRedis {
        nodes,
        password: password.into(),
        summary: format!(
            "Redis primary :{primary} with {}, Sentinels {}",
            plural(spec.replicas_per_shard.max(0) as u64, "replica"),
            sentinels.join(" ")
        ),
        sidecar: sidecar_redis(settings::RedisMode::Sentinel { master: SENTINEL_MASTER.into() }, sentinels, Some(password)),
    })
}

fn external(spec: &RedisSpec) -> anyhow::Result<LocalRedis> {
    let ext = spec.external.as_ref().ok_or_else(|| anyhow::anyhow!("redis.mode: external needs redis.external"))?;
    let password = external_password(ext)?;
    Ok(LocalRedis {
        nodes: Vec::new(),
        password: String::new(),

        summary: format!("external Redis ({}) at {}", ext.mode.as_str(), ext.addresses.join(" ")),
        sidecar: sidecar_redis(ext.sidecar_mode(), ext.addresses.clone(), password.as_deref()),
    })
}

/// The external Redis's password: a Kubernetes Secret cannot be read here, so it comes
/// from the environment when the spec names one.
pub fn external_password(ext: &ExternalRedisSpec) -> anyhow::Result<Option<String>> {
    let Some(r) = &ext.password_secret_ref else { return Ok(None) };
    let password = std::env::var("SOCKETFLEET_REDIS_PASSWORD").ok().filter(|p| !p.is_empty());
    password.map(Some).ok_or_else(|| {
        anyhow::anyhow!("redis.external.passwordSecretRef names Secret {}; locally, put the password in SOCKETFLEET_REDIS_PASSWORD", r.name)
    })
}

/// Where local runs keep their files.
pub fn work_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("socketfleet-local-{}", std::process::id()));
    // Private: it holds the Sentinels' configs, with the Redis password.
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    Ok(dir)
}
