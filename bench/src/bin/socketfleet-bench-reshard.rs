//! `socketfleet-bench-reshard`: what a reshard costs while a fleet is busy. On loopback it
//! starts a Redis Cluster of 3 shards (one replica each) bootstrapped by the operator's own
//! admin pass, writes `--keys` keys, starts three sidecars (`--sidecar`, durable publish)
//! and runs `socketfleet-bench run` (`--bench`) twice at the same fixed rate:
//!
//! 1. baseline: nothing moves;
//! 2. resharding: 3 → 4 → 3 shards over and over, driven by `redis_cluster::heal` as the
//!    operator drives it, from 3 s into the run until it ends (the fourth shard's two pods
//!    start fresh for every grow, as a StatefulSet's new pods do).
//!
//! It prints one JSON report: slots and keys moved per second (each grow and shrink timed
//! from its first pass to convergence), publish→deliver p50/p99 of both runs and the p99
//! the moves added, the bench's missing and duplicate counts for both runs, and the keys
//! still readable at the end. Every loop is bounded by the run's length or a deadline.
//!
//! Usage: `socketfleet-bench-reshard --sidecar PATH --bench PATH --out DIR [--keys 100000]
//! [--clients 1000] [--channels 100] [--publishers 4] [--rate 500] [--seconds 40]`

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use socketfleet_api::settings;
use socketfleet_harness::cluster_keys::{readable_keys, write_keys};
use socketfleet_harness::ports::{try_free_cluster_port, try_free_port};
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::{IN_MEMORY_ARGS, TEST_CLUSTER_ARGS, start_anywhere_async};
use socketfleet_operator::redis_cluster::{Access, Action, Layout, Member, heal};

const SHARDS: usize = 3;
const REPLICAS: usize = 1;
const SIDECARS: usize = 3;

struct Args {
    sidecar: PathBuf,
    bench: PathBuf,
    out: PathBuf,
    keys: usize,
    clients: usize,
    channels: usize,
    publishers: usize,
    rate: u32,
    seconds: u64,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let get = |name: &str| argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned();
        let num = |name: &str, default: u64| -> anyhow::Result<u64> {
            get(name).map_or(Ok(default), |v| v.parse().with_context(|| format!("bad {name} {v:?}")))
        };
        let path = |name: &str| get(name).map(PathBuf::from).with_context(|| format!("missing {name}"));
        Ok(Args {
            sidecar: path("--sidecar")?,
            bench: path("--bench")?,
            out: path("--out")?,
            keys: num("--keys", 100_000)? as usize,
            clients: num("--clients", 1000)? as usize,
            channels: num("--channels", 100)? as usize,
            publishers: num("--publishers", 4)? as usize,
            rate: num("--rate", 500)? as u32,
            seconds: num("--seconds", 40)?,
        })
    }
}

/// The cluster's pods: `(port, process)` by ordinal.
struct Pods {
    dir: PathBuf,
    password: String,
    nodes: Vec<(u16, Proc)>,
    started: usize,
}

impl Pods {
    /// A fresh, empty node in a directory of its own (nothing kept from an earlier one).
    async fn start_one(&mut self) -> anyhow::Result<(u16, Proc)> {
        self.started += 1;
        let dir = self.dir.join(format!("node-{}", self.started));
        let args: Vec<&str> = TEST_CLUSTER_ARGS.iter().chain(IN_MEMORY_ARGS).copied().collect();
        let dir_for = |_| {
            let _ = std::fs::create_dir_all(&dir);
            dir.clone()
        };
        start_anywhere_async(dir_for, Some(&self.password), &args, try_free_cluster_port).await.map_err(anyhow::Error::msg)
    }

    async fn grow_to(&mut self, pods: usize) -> anyhow::Result<()> {
        while self.nodes.len() < pods {
            let node = self.start_one().await?;
            self.nodes.push(node);
        }
        Ok(())
    }

    fn members(&self) -> Vec<Member> {
        let member =
            |(i, (port, _)): (usize, &(u16, Proc))| Member { name: format!("redis-{i}"), addr: format!("127.0.0.1:{port}"), ordinal: i };
        self.nodes.iter().enumerate().map(member).collect()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.nodes[0].0)
    }
}

/// Slots and keys one reshard moved, and how long it took.
#[derive(Default)]
struct Moved {
    slots: usize,
    keys: usize,
    seconds: f64,
}

/// Admin passes on `layout` until converged, as the operator's reconcile runs them; pods
/// beyond the layout are stopped once a pass reports they hold nothing (the StatefulSet's
/// shrink), and the next passes forget them.
async fn converge(pods: &mut Pods, layout: Layout, access: &Access) -> anyhow::Result<Moved> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut moved = Moved::default();
    loop {
        let report = heal(layout, &pods.members(), access).await.context("an admin pass")?;
        for a in &report.actions {
            if let Action::MoveSlots { slots, keys, .. } = a {
                moved.slots += slots;
                moved.keys += keys;
            }
        }
        if report.leaving_busy == 0 && pods.nodes.len() > layout.pods() {
            pods.nodes.truncate(layout.pods());
        }
        if report.converged && report.cluster_state == "ok" {
            moved.seconds = started.elapsed().as_secs_f64();
            return Ok(moved);
        }
        ensure!(Instant::now() < deadline, "not converged on {layout:?} in 300 s: {report:?}");
        if report.actions.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A sidecar in cluster mode with durable publish; its WebSocket address once it is ready.
async fn start_sidecar(args: &Args, pods: &Pods, i: usize) -> anyhow::Result<(String, Proc)> {
    let (ws, admin, api) = (try_free_port()?, try_free_port()?, try_free_port()?);
    let addrs: Vec<String> = pods.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
    let log = std::fs::File::create(args.out.join(format!("sidecar-{i}.log")))?;
    let child = std::process::Command::new(&args.sidecar)
        .env(settings::ENV_WS_ADDR, format!("127.0.0.1:{ws}"))
        .env(settings::ENV_ADMIN_ADDR, format!("127.0.0.1:{admin}"))
        .env(settings::ENV_APP_API_ADDR, format!("127.0.0.1:{api}"))
        .env(settings::ENV_NODE_NAME, format!("sidecar-{i}"))
        .env(settings::ENV_AUTH, "none")
        .env(settings::ENV_REDIS_MODE, "cluster")
        .env(settings::ENV_REDIS_ADDRS, addrs.join(","))
        .env(settings::ENV_REDIS_PASSWORD, &pods.password)
        .env(settings::ENV_DURABLE_PUBLISH, "true")
        .env(settings::ENV_LOG, "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("{} does not start", args.sidecar.display()))?;
    let proc = Proc::new(child, format!("sidecar-{i}"));
    let admin = format!("127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = socketfleet_plumbing::http_client::request(&admin, http::Method::GET, "/ready", Duration::from_secs(1)).await;
        if ready.is_ok_and(|r| r.status == 200) {
            return Ok((format!("127.0.0.1:{ws}"), proc));
        }
        ensure!(Instant::now() < deadline, "sidecar-{i} not ready in 30 s; see {}", args.out.join(format!("sidecar-{i}.log")).display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `socketfleet-bench run` at the fixed rate, started now; its report when it ends.
fn bench_run(args: &Args, ws: &[String], prefix: &str) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(&args.bench)
        .args(["run", "--system", "socketfleet", "--addrs", &ws.join(","), "--channel-prefix", prefix])
        .args(["--clients", &args.clients.to_string(), "--channels", &args.channels.to_string()])
        .args(["--publishers", &args.publishers.to_string(), "--fixed", &format!("{}:{}", args.rate, args.seconds)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("{} does not start", args.bench.display()))
}

async fn report_of(child: tokio::process::Child, what: &str, out: &Path) -> anyhow::Result<Value> {
    let output = child.wait_with_output().await?;
    std::fs::write(out.join(format!("{what}.json")), &output.stdout)?;
    if !output.status.success() {
        bail!("{what}: socketfleet-bench failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_slice(&output.stdout).with_context(|| format!("{what}: the bench's report"))
}

fn summary(report: &Value) -> Value {
    let fixed = &report["fixed"];
    json!({
        "published_per_s": fixed["published_per_s"], "delivered_per_s": fixed["delivered_per_s"],
        "p50_ms": fixed["latency"]["p50_ms"], "p99_ms": fixed["latency"]["p99_ms"], "max_ms": fixed["latency"]["max_ms"],
        "acknowledged": report["acknowledged"], "refused": report["refused"], "unconfirmed": report["unconfirmed"],
        "missing": report["missing"], "duplicates": report["duplicates"],
    })
}

fn rate(n: usize, seconds: f64) -> f64 {
    (n as f64 / seconds.max(1e-9)).round()
}

async fn bench(args: Args) -> anyhow::Result<Value> {
    std::fs::create_dir_all(&args.out)?;
    let mut random = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
    let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = args.out.join("redis");
    let mut pods = Pods { dir, password: password.clone(), nodes: Vec::new(), started: 0 };
    let access = Access { password: Some(password.clone()), timeout: Duration::from_secs(2) };
    let small = Layout { shards: SHARDS, replicas_per_shard: REPLICAS };
    let large = Layout { shards: SHARDS + 1, replicas_per_shard: REPLICAS };
    pods.grow_to(small.pods()).await?;
    converge(&mut pods, small, &access).await.context("bootstrap")?;
    write_keys(&pods.addr(), Some(&password), args.keys, REPLICAS).await;
    let mut sidecars = Vec::new();
    for i in 0..SIDECARS {
        sidecars.push(start_sidecar(&args, &pods, i).await?);
    }
    let ws: Vec<String> = sidecars.iter().map(|(a, _)| a.clone()).collect();

    let baseline = report_of(bench_run(&args, &ws, "base")?, "baseline", &args.out).await?;

    let mut run = bench_run(&args, &ws, "moving")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut grows, mut shrinks) = (Vec::new(), Vec::new());
    // Whole grow-and-shrink cycles while the run lasts (it ends on its own at --seconds).
    while run.try_wait()?.is_none() {
        pods.grow_to(large.pods()).await?;
        grows.push(converge(&mut pods, large, &access).await.context("3 → 4")?);
        shrinks.push(converge(&mut pods, small, &access).await.context("4 → 3")?);
    }
    let moving = report_of(run, "resharding", &args.out).await?;
    let readable = readable_keys(&pods.addr(), Some(&password), args.keys).await;
    drop(sidecars);

    let total = |m: &[Moved]| {
        (m.iter().map(|x| x.slots).sum::<usize>(), m.iter().map(|x| x.keys).sum::<usize>(), m.iter().map(|x| x.seconds).sum::<f64>())
    };
    let row = |m: &[Moved]| {
        let (slots, keys, seconds) = total(m);
        json!({"count": m.len(), "slots": slots, "keys": keys, "seconds": (seconds * 10.0).round() / 10.0,
               "slots_per_s": rate(slots, seconds), "keys_per_s": rate(keys, seconds)})
    };
    let p99 = |r: &Value| r["fixed"]["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "keys": args.keys, "keys_readable_after": readable,
        "load": {"clients": args.clients, "channels": args.channels, "publishers": args.publishers, "rate": args.rate, "seconds": args.seconds, "durable": true},
        "grow_3_to_4": row(&grows), "shrink_4_to_3": row(&shrinks),
        "baseline": summary(&baseline), "resharding": summary(&moving),
        "added_p99_ms": ((p99(&moving) - p99(&baseline)) * 10.0).round() / 10.0,
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(bench(args))?;
    println!("{report}");
    Ok(())
}
