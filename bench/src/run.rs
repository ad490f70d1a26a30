//! `socketfleet-bench run`: connects the subscribers, then drives the publishers through
//! the phases asked for and prints one JSON report.
//!
//! - ramp `start:factor:seconds:steps`: the publish rate starts at `start` per second and
//!   is multiplied by `factor` every `seconds` until the system stops keeping up
//!   (delivered < 90% of what was published times the subscribers per channel, or p99
//!   above one second) or `steps` ran; the result is the best step that kept up.
//! - fixed `rate:seconds`: a constant rate; `auto:<fraction>` takes that fraction of the
//!   ramp's best publish rate. An event (`--event-at`, `--event`: a shell command such as
//!   a rolling replacement or `kill -9` of a Redis primary) runs during this phase.
//!
//! After the last phase the publishers stop, deliveries settle, and every subscriber's
//! receipts are compared with the acknowledged publications: `missing` counts
//! acknowledged publications a subscriber never got, `duplicates` those it got twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::clients::{self, Fleet};
use crate::procs::Procs;
use crate::publisher;
use crate::stats::{Seqs, Stats};
use crate::systems::System;

pub struct Plan {
    pub system: System,
    pub addrs: Vec<String>,
    pub clients: usize,
    pub channels: usize,
    pub payload: usize,
    pub publishers: usize,
    pub ramp: Option<(f64, f64, u64, usize)>,
    pub fixed: Option<(String, u64)>,
    pub event: Option<(u64, String)>,
    pub procs: Procs,
    /// A JWT for systems that require one (SocketFleet with `auth.mode` hs256/rs256).
    pub token: Option<String>,
}

pub async fn run(plan: Plan) -> anyhow::Result<Value> {
    let stats = Arc::new(Stats::new(plan.clients));
    let fleet = Arc::new(Fleet {
        system: plan.system,
        addrs: plan.addrs.clone(),
        stats: stats.clone(),
        payload: plan.payload,
        acked: (0..plan.channels).map(|_| Mutex::new(Seqs::default())).collect(),
        rate: Default::default(),
        publishers: plan.publishers,
        token: plan.token.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(200));
    let mut subscribers = Vec::with_capacity(plan.clients);
    // One deadline for connecting them all: a permit is held until its client is ready,
    // so servers that died would otherwise stall this loop forever.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let not_ready = || format!("only {} of {} subscribers ready", stats.connected.load(Ordering::SeqCst), plan.clients);
    for client in 0..plan.clients {
        let permit = tokio::time::timeout_at(deadline, gate.clone().acquire_owned()).await.with_context(not_ready)??;
        let (fleet, stop) = (fleet.clone(), stop_rx.clone());
        let channel = (client % plan.channels) as u32;
        subscribers.push(tokio::spawn(clients::subscriber(fleet, client, channel, stop, permit)));
    }
    wait_until(deadline.saturating_duration_since(tokio::time::Instant::now()), || stats.connected.load(Ordering::SeqCst) >= plan.clients)
        .await
        .with_context(not_ready)?;
    let connect_s = started.elapsed().as_secs_f64();
    eprintln!("{} subscribers ready in {connect_s:.1}s", plan.clients);

    let stop_publishing = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for p in 0..plan.publishers {
        let mine = (0..plan.channels as u32).filter(|c| *c as usize % plan.publishers == p).collect();
        publishers.push(tokio::spawn(publisher::publisher(fleet.clone(), p, mine, stop_publishing.clone())));
    }
    let fanout = (plan.clients / plan.channels) as f64;
    let mut report = json!({
        "system": format!("{:?}", plan.system), "clients": plan.clients, "channels": plan.channels,
        "instances": plan.addrs.len(), "payload": plan.payload, "publishers": plan.publishers, "connect_s": round(connect_s),
    });

    let mut best_rate = 0.0;
    if let Some((start, factor, seconds, steps)) = plan.ramp {
        let mut rows = Vec::new();
        let (mut best, mut peak) = (Value::Null, 0.0f64);
        let mut rate = start;
        for _ in 0..steps {
            let row = phase(&fleet, &plan.procs, rate, seconds, fanout, None).await;
            let kept_up = row["kept_up"].as_bool().unwrap_or(false);
            eprintln!("ramp {row}");
            peak = peak.max(row["delivered_per_s"].as_f64().unwrap_or(0.0));
            if kept_up {
                best_rate = row["published_per_s"].as_f64().unwrap_or(0.0);
                best = row.clone();
            }
            rows.push(row);
            if !kept_up {
                break;
            }
            rate *= factor;
        }
        fleet.rate.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        report["ramp"] = json!({"steps": rows, "sustained": best, "peak_delivered_per_s": peak.round()});
    }
    if let Some((rate, seconds)) = &plan.fixed {
        let rate = match rate.strip_prefix("auto:") {
            Some(fraction) => (best_rate * fraction.parse::<f64>().context("auto:<fraction>")?).max(1.0),
            None => rate.parse().context("fixed rate")?,
        };
        let row = phase(&fleet, &plan.procs, rate, *seconds, fanout, plan.event.clone()).await;
        eprintln!("fixed {row}");
        report["fixed"] = row;
    }

    stop_publishing.store(true, Ordering::SeqCst);
    for p in publishers {
        p.await?;
    }
    // A client still reconnecting has not lost what it will get once back: wait for every
    // subscriber to be connected again (at most 60 s) before settling.
    if wait_until(Duration::from_secs(60), || stats.connected.load(Ordering::SeqCst) >= plan.clients).await.is_err() {
        eprintln!("{}", not_ready());
    }
    // Let deliveries settle: until nothing arrived for two seconds (at most 30 s).
    let mut last = u64::MAX;
    for _ in 0..30 {
        let now = stats.delivered.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop_tx.send(true)?;
    let mut missing = 0;
    let mut clients_missing = 0;
    for s in subscribers {
        let (channel, received) = s.await?;
        let ledger = fleet.acked[channel as usize].lock().expect("ledger lock");
        let m = ledger.missing_from(&received);
        // Which ones, for the first few clients: enough to tell a hole at a handoff from a
        // tail the client never caught up on.
        if m > 0 && clients_missing < 10 {
            let lost = ledger.missing_list(&received, 5);
            eprintln!("missing: channel {channel}: {m} acknowledged seqs, first {lost:?}; the client got up to {:?}", received.last());
        }
        missing += m;
        clients_missing += u64::from(m > 0);
    }
    report["published"] = json!(stats.published.load(Ordering::SeqCst));
    report["acknowledged"] = json!(stats.acked.load(Ordering::SeqCst));
    report["refused"] = json!(stats.publish_errors.load(Ordering::SeqCst));
    report["unconfirmed"] = json!(stats.unconfirmed.load(Ordering::SeqCst));
    report["retried"] = json!(stats.retried.load(Ordering::SeqCst));
    report["delivered"] = json!(stats.delivered.load(Ordering::SeqCst));
    report["missing"] = json!(missing);
    report["clients_missing"] = json!(clients_missing);
    report["duplicates"] = json!(stats.duplicates.load(Ordering::SeqCst));
    report["connect_errors"] = json!(stats.connect_errors.load(Ordering::SeqCst));
    report["disconnects"] = json!(stats.disconnects.load(Ordering::SeqCst));
    report["resumed"] = json!(stats.resumed.load(Ordering::SeqCst));
    report["resume_rejected"] = json!(stats.resume_rejected.load(Ordering::SeqCst));
    Ok(report)
}

/// One phase at `rate` publishes per second for `seconds`; with an event, runs it
/// `at` seconds in and reports the recovery.
async fn phase(fleet: &Arc<Fleet>, procs: &Procs, rate: f64, seconds: u64, fanout: f64, event: Option<(u64, String)>) -> Value {
    let stats = &fleet.stats;
    let phase = stats.start_phase();
    let (p0, d0, t0) = (stats.published.load(Ordering::SeqCst), stats.delivered.load(Ordering::SeqCst), Instant::now());
    let cpu0 = procs.sample();
    let peak = event.is_some().then(|| tokio::spawn(procs.clone().peak(seconds)));
    fleet.rate.store(rate.round() as u64, Ordering::SeqCst);
    let event = event.map(|(at, command)| {
        let stats = stats.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(at)).await;
            let start = stats.now_us();
            let status = tokio::process::Command::new("bash").arg("-c").arg(&command).status().await;
            (start, stats.now_us(), status.map(|s| s.success()).unwrap_or(false))
        })
    });
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let published = (stats.published.load(Ordering::SeqCst) - p0) as f64 / elapsed;
    let delivered = (stats.delivered.load(Ordering::SeqCst) - d0) as f64 / elapsed;
    let latency = stats.latency(phase);
    let kept_up = delivered >= 0.9 * published * fanout && stats.p99_ms(phase) < 1000.0;
    let mut row = json!({
        "target_rate": rate.round(), "published_per_s": published.round(), "delivered_per_s": delivered.round(),
        "expected_per_s": (published * fanout).round(), "kept_up": kept_up, "latency": latency,
        "servers": procs.usage(&cpu0),
    });
    if let Some(event) = event {
        match event.await {
            Ok((start, end, ok)) => {
                row["event"] = json!({"ok": ok, "duration_s": round((end - start) as f64 / 1e6)});
                row["recovery"] = stats.recovery(start);
            }
            Err(e) => row["event"] = json!({"error": e.to_string()}),
        }
    }
    if let Some(peak) = peak {
        row["peak_cores"] = peak.await.unwrap_or(Value::Null);
    }
    row
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
