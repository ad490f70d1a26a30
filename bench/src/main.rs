//! `socketfleet-bench`: the load generator behind `make bench`.
//!
//! - `idle <ws-url>[,<ws-url>...] <connections> <hold-seconds>`: opens that many
//!   connections (round-robin over the URLs), waits for every `welcome`, prints `ready`, and
//!   holds them so the caller can measure server RSS.
//! - `fanout <ws-urls> <clients> <channels> <seconds> <payload-bytes>`: clients subscribe
//!   round-robin to channels; one publisher per channel publishes as fast as replies allow
//!   (a window of 64 in flight); prints delivered messages per second.
//!
//! Every loop is bounded by a count or a deadline; targets are whatever URLs it is given
//! (the scripts pass loopback addresses only).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> anyhow::Result<T> {
    args.get(i).with_context(|| format!("missing <{name}>"))?.parse().map_err(|_| anyhow::anyhow!("bad <{name}>"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => {
            idle(args[2].split(',').map(str::to_string).collect(), arg(&args, 3, "connections")?, arg(&args, 4, "hold-seconds")?).await
        }
        Some("fanout") => {
            fanout(
                args[2].split(',').map(str::to_string).collect(),
                arg(&args, 3, "clients")?,
                arg(&args, 4, "channels")?,
                arg(&args, 5, "seconds")?,
                arg(&args, 6, "payload-bytes")?,
            )
            .await
        }
        _ => bail!("usage: socketfleet-bench idle <urls> <n> <hold-s> | fanout <urls> <clients> <channels> <seconds> <payload>"),
    }
}

async fn open(url: &str) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => bail!("no welcome: {other:?}"),
    }
}

async fn idle(urls: Vec<String>, n: usize, hold: u64) -> anyhow::Result<()> {
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let url = urls[i % urls.len()].clone();
        let permit = gate.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let ws = open(&url).await;
            drop(permit);
            ws
        }));
    }
    let mut held = Vec::with_capacity(n);
    for t in tasks {
        held.push(t.await??);
    }
    println!("ready {} connections in {:.1}s", held.len(), started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(hold)).await;
    Ok(())
}

async fn fanout(urls: Vec<String>, clients: usize, channels: usize, seconds: u64, payload: usize) -> anyhow::Result<()> {
    let delivered = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(256));
    let mut readers = Vec::new();
    for i in 0..clients {
        let url = urls[i % urls.len()].clone();
        let delivered = delivered.clone();
        let permit = gate.clone().acquire_owned().await?;
        let channel = format!("bench:{}", i % channels);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        readers.push(tokio::spawn(async move {
            let mut ws = open(&url).await?;
            ws.send(Message::Text(json!({"op": "subscribe", "channel": channel, "id": 1}).to_string().into())).await?;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"subscribed\"")
                {
                    break;
                }
            }
            drop(permit);
            let _ = ready_tx.send(());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 30);
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
                if matches!(m, Message::Text(ref t) if t.starts_with("{\"type\":\"message\"")) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
        ready_rx.await.context("a subscriber failed to subscribe")?;
    }
    eprintln!("{clients} subscribers ready");
    let data = "x".repeat(payload.saturating_sub(30));
    let published = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let mut publishers = Vec::new();
    for c in 0..channels {
        let url = urls[c % urls.len()].clone();
        let data = data.clone();
        let published = published.clone();
        publishers.push(tokio::spawn(async move {
            let ws = open(&url).await?;
            let (mut tx, mut rx) = ws.split();
            let window = Arc::new(Semaphore::new(64));
            let w = window.clone();
            let acks = tokio::spawn(async move {
                while let Some(Ok(m)) = rx.next().await {
                    if matches!(m, Message::Text(ref t) if t.contains("\"reply\"")) {
                        w.add_permits(1);
                    }
                }
            });
            let mut id = 0u64;
            while Instant::now() < stop_at {
                window.acquire().await?.forget();
                id += 1;
                let frame = json!({"op": "publish", "channel": format!("bench:{c}"), "data": {"t": data}, "id": id});
                tx.send(Message::Text(frame.to_string().into())).await?;
                published.fetch_add(1, Ordering::Relaxed);
            }
            acks.abort();
            anyhow::Ok(())
        }));
    }
    let t0 = Instant::now();
    let d0 = delivered.load(Ordering::Relaxed);
    for p in publishers {
        p.await??;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let d = delivered.load(Ordering::Relaxed) - d0;
    let p = published.load(Ordering::Relaxed);
    let result: Value = json!({
        "clients": clients, "channels": channels, "seconds": elapsed, "payload": payload,
        "published_per_s": (p as f64 / elapsed).round(), "delivered_per_s": (d as f64 / elapsed).round(),
    });
    println!("{result}");
    for r in readers {
        r.abort();
    }
    Ok(())
}
