//! `socketfleet-bench`: the load generator behind `make bench`. It speaks to SocketFleet and
//! to the peers it is compared with (Centrifugo's engine, Socket.IO with the Redis streams
//! adapter, a plain `ws` + ioredis server) through one protocol adapter each
//! (`systems`), so every system gets the same clients, channels, payloads and rates.
//!
//! - `run --system S --addrs a,b,c --clients N --channels C [--payload 100] [--publishers P]
//!   [--ramp start:factor:seconds:steps] [--fixed rate|auto:fraction:seconds]
//!   [--event-at S --event CMD] [--procs servers=pid,..;redis=pid,..] [--token JWT]
//!   [--channel-prefix P]`: fan-out, latency,
//!   rolling replacement and failover (see `run`); prints one JSON report.
//! - `idle --system S --addrs a --clients N --pid PID [--hold S]`: memory per idle
//!   connection of process PID (RSS growth / N); prints JSON.
//! - `loopback [frame-bytes] [seconds]`: the machine's loopback write limit.
//!
//! Every loop is bounded by a count or a deadline; targets are the addresses given (the
//! scripts pass loopback addresses only).

mod clients;
mod loopback;
mod net;
mod payload;
mod procs;
mod publisher;
mod run;
mod stats;
mod systems;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::systems::System;

/// `--name value` pairs.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag.strip_prefix("--").with_context(|| format!("expected --flag, got {flag:?}"))?;
            map.insert(name.to_string(), it.next().with_context(|| format!("--{name} needs a value"))?.clone());
        }
        Ok(Self(map))
    }
    fn text(&self, name: &str) -> anyhow::Result<&str> {
        self.0.get(name).map(String::as_str).with_context(|| format!("missing --{name}"))
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> anyhow::Result<T> {
        match self.0.get(name) {
            Some(v) => v.parse().map_err(|_| anyhow::anyhow!("bad --{name} {v:?}")),
            None => default.with_context(|| format!("missing --{name}")),
        }
    }
    fn list(&self, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(self.text(name)?.split(',').map(str::to_string).collect())
    }
}

fn pair<A: std::str::FromStr, B: std::str::FromStr>(spec: &str, what: &str) -> anyhow::Result<(A, B)> {
    let (a, b) = spec.rsplit_once(':').with_context(|| format!("{what}: expected a:b"))?;
    Ok((a.parse().map_err(|_| anyhow::anyhow!("{what}: bad {a:?}"))?, b.parse().map_err(|_| anyhow::anyhow!("{what}: bad {b:?}"))?))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let command = args.get(1).map(String::as_str).unwrap_or("");
    if command == "loopback" {
        let frame = args.get(2).map_or(Ok(100), |s| s.parse()).context("frame bytes")?;
        let seconds = args.get(3).map_or(Ok(5), |s| s.parse()).context("seconds")?;
        println!("{}", loopback::run(frame, seconds)?);
        return Ok(());
    }
    let flags = Flags::parse(args.get(2..).unwrap_or_default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match command {
        "run" => {
            if let Some(prefix) = flags.0.get("channel-prefix") {
                anyhow::ensure!(!prefix.is_empty() && !prefix.contains(':'), "--channel-prefix: a name without ':'");
                systems::set_channel_prefix(prefix);
            }
            let ramp = match flags.0.get("ramp") {
                Some(spec) => {
                    let p: Vec<&str> = spec.split(':').collect();
                    anyhow::ensure!(p.len() == 4, "--ramp start:factor:seconds:steps");
                    Some((p[0].parse()?, p[1].parse()?, p[2].parse()?, p[3].parse()?))
                }
                None => None,
            };
            let mut plan = run::Plan {
                system: System::parse(flags.text("system")?)?,
                addrs: flags.list("addrs")?,
                clients: flags.num("clients", None)?,
                channels: flags.num("channels", None)?,
                payload: flags.num("payload", Some(100))?,
                publishers: flags.num("publishers", Some(10))?,
                ramp,
                fixed: flags.0.get("fixed").map(|s| pair(s, "--fixed")).transpose()?,
                event: match flags.0.get("event") {
                    Some(cmd) => Some((flags.num("event-at", None)?, cmd.clone())),
                    None => None,
                },
                procs: procs::Procs::parse(flags.0.get("procs").map_or("", String::as_str)),
                token: flags.0.get("token").cloned(),
            };
            // The generator's own CPU: a step where it is at one core measured the generator.
            plan.procs.groups.push(("generator".into(), vec![std::process::id()]));
            anyhow::ensure!(plan.channels > 0 && plan.clients >= plan.channels, "need clients >= channels > 0");
            println!("{}", runtime.block_on(run::run(plan))?);
        }
        "idle" => println!("{}", runtime.block_on(idle(&flags))?),
        _ => bail!("usage: socketfleet-bench run|idle|loopback ... (see the module docs in bench/src/main.rs)"),
    }
    // Client tasks may still be winding down; the report is out.
    std::process::exit(0);
}

async fn idle(flags: &Flags) -> anyhow::Result<serde_json::Value> {
    let clients: usize = flags.num("clients", None)?;
    let pid: u32 = flags.num("pid", None)?;
    let hold: u64 = flags.num("hold", Some(3))?;
    let fleet = Arc::new(clients::Fleet {
        system: System::parse(flags.text("system")?)?,
        addrs: flags.list("addrs")?,
        stats: Arc::new(stats::Stats::new(clients)),
        payload: 0,
        acked: Vec::new(),
        rate: Default::default(),
        publishers: 1,
        token: flags.0.get("token").cloned(),
    });
    let before = procs::rss_bytes(pid);
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let permit = gate.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(clients::idle(fleet.clone(), client, stop_rx.clone(), permit)));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while fleet.stats.connected.load(Ordering::SeqCst) < clients {
        if Instant::now() > deadline || tasks.iter().any(|t| t.is_finished()) {
            bail!("only {} of {clients} idle connections ready", fleet.stats.connected.load(Ordering::SeqCst));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let after = procs::rss_bytes(pid);
    stop_tx.send(true)?;
    Ok(json!({
        "system": flags.text("system")?, "connections": clients, "connect_s": (connect_s * 10.0).round() / 10.0,
        "rss_before_mib": before >> 20, "rss_after_mib": after >> 20,
        "bytes_per_connection": (after.saturating_sub(before) as f64 / clients as f64).round(),
    }))
}
