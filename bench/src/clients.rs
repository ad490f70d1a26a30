//! The generator's clients. A subscriber holds one channel, records every delivery and
//! reconnects (to the next instance, resuming where the protocol allows) whenever it is
//! told to go or its connection drops. A publisher publishes the channels it owns at its
//! share of the target rate and records which publications were acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, Ws};
use crate::payload::{self, Stamp};
use crate::stats::{Seqs, Stats};
use crate::systems::{Action, Conn, FIRST_PUBLISH_ID, System};

pub struct Fleet {
    pub system: System,
    pub addrs: Vec<String>,
    pub stats: Arc<Stats>,
    pub payload: usize,
    /// Per channel, the publications the system acknowledged.
    pub acked: Vec<Mutex<Seqs>>,
    /// Total publishes per second asked of all publishers together.
    pub rate: AtomicU64,
    pub publishers: usize,
    /// Sent as `token=<jwt>` on every SocketFleet connection, resumes included.
    pub token: Option<String>,
}

/// Opens a connection to `addrs[at]` and runs the protocol until the client is ready;
/// actions that arrive before (backfill) are handed to `on_action`.
async fn connect(fleet: &Fleet, at: usize, client: usize, conn: &mut Conn, mut on_action: impl FnMut(&Action)) -> anyhow::Result<Ws> {
    conn.ready = false;
    let mut url = fleet.system.url(&fleet.addrs[at % fleet.addrs.len()], conn);
    if let (System::SocketFleet, Some(token)) = (fleet.system, &fleet.token) {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(token);
    }
    let mut ws = net::open(&url, client).await?;
    let mut out = Vec::new();
    fleet.system.on_open(conn, &mut out);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for action in out.drain(..) {
            match action {
                Action::Send(frame) => ws.send(Message::Text(frame.into())).await?,
                Action::Reconnect { .. } => anyhow::bail!("told to go while connecting"),
                other => on_action(&other),
            }
        }
        if conn.ready {
            return Ok(ws);
        }
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => fleet.system.on_frame(&text, conn, &mut out),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => anyhow::bail!("closed while connecting"),
            Err(_) => anyhow::bail!("not ready within 30 s"),
        }
    }
}

/// One subscriber until `stop` turns true; returns its channel and what it received.
/// `connecting` is a permit of the generator's connect gate, released once the first
/// connection is ready.
pub async fn subscriber(
    fleet: Arc<Fleet>,
    client: usize,
    channel: u32,
    mut stop: watch::Receiver<bool>,
    connecting: OwnedSemaphorePermit,
) -> (u32, Seqs) {
    let mut connecting = Some(connecting);
    let stats = &fleet.stats;
    let mut conn = Conn { channel: Some(channel), ..Conn::default() };
    let mut received = Seqs::default();
    let mut at = client;
    let mut down_since: Option<u64> = None;
    let mut attempt = 0u32;
    // What this client's library would wait before reconnect attempt `attempt` from `at`.
    let reconnect_delay = |attempt: u32, at: usize| fleet.system.reconnect_delay_ms(attempt, ((client as u64) << 32) ^ at as u64);
    let deliver = |stamp: Stamp, received: &mut Seqs| {
        if received.insert(stamp.seq) {
            stats.delivered(client, stamp.sent_us);
        } else {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !*stop.borrow() {
        let opened = connect(&fleet, at, client, &mut conn, |a| {
            if let Action::Deliver(stamp) = a {
                deliver(*stamp, &mut received);
            }
        });
        let mut ws = match opened.await {
            Ok(ws) => ws,
            Err(e) => {
                // The first few reasons go to the log: a count alone does not say what failed.
                if stats.connect_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("subscriber {client}: connect failed: {e:#}");
                }
                down_since.get_or_insert_with(|| stats.now_us());
                at += 1;
                attempt += 1;
                let backoff = Duration::from_millis(reconnect_delay(attempt, at));
                if tokio::time::timeout(backoff, stop.changed()).await.is_ok() {
                    break;
                }
                continue;
            }
        };
        attempt = 0;
        connecting.take();
        stats.became_ready(down_since.take());
        let mut out = Vec::new();
        let mut delay_ms = 0;
        'conn: loop {
            tokio::select! {
                _ = stop.changed() => break 'conn,
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => fleet.system.on_frame(&text, &mut conn, &mut out),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break 'conn,
                    Some(Ok(_)) => {}
                },
            }
            for action in out.drain(..) {
                match action {
                    Action::Deliver(stamp) => deliver(stamp, &mut received),
                    Action::Send(frame) => {
                        if ws.send(Message::Text(frame.into())).await.is_err() {
                            break 'conn;
                        }
                    }
                    Action::Reconnect { delay_ms: d } => {
                        delay_ms = d;
                        break 'conn;
                    }
                    Action::Ready | Action::Ack { .. } => {}
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        stats.went_down();
        down_since = Some(stats.now_us());
        at += 1;
        drop(ws);
        if delay_ms == 0 {
            delay_ms = reconnect_delay(0, at);
        }
        if tokio::time::timeout(Duration::from_millis(delay_ms.min(10_000)), stop.changed()).await.is_ok() {
            break;
        }
    }
    (channel, received)
}

/// One publisher of `channels` until `stop`; reconnects to the next instance when its
/// connection drops. Publications in flight when a connection drops count as unconfirmed.
pub async fn publisher(fleet: Arc<Fleet>, index: usize, channels: Vec<u32>, stop: Arc<AtomicBool>) {
    let stats = &fleet.stats;
    let mut seqs = vec![0u64; channels.len()];
    let mut next = 0usize;
    let mut at = index;
    while !stop.load(Ordering::Relaxed) {
        let mut conn = Conn::default();
        let ws = match connect(&fleet, at, 1_000_000 + index, &mut conn, |_| {}).await {
            Ok(ws) => ws,
            Err(_) => {
                stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (mut tx, mut rx) = ws.split();
        let pending: Arc<Mutex<HashMap<u64, (u32, u64)>>> = Arc::default();
        let (control_tx, mut control) = mpsc::unbounded_channel::<String>();
        let reader = {
            let (fleet, pending) = (fleet.clone(), pending.clone());
            tokio::spawn(async move {
                let mut conn = conn;
                let mut out = Vec::new();
                while let Some(Ok(message)) = rx.next().await {
                    let Message::Text(text) = message else { continue };
                    fleet.system.on_frame(&text, &mut conn, &mut out);
                    for action in out.drain(..) {
                        match action {
                            Action::Ack { id, ok } => {
                                let Some((channel, seq)) = pending.lock().expect("pending lock").remove(&id) else { continue };
                                if ok {
                                    fleet.stats.acked.fetch_add(1, Ordering::Relaxed);
                                    fleet.acked[channel as usize].lock().expect("ledger lock").insert(seq);
                                } else {
                                    fleet.stats.publish_failed();
                                }
                            }
                            Action::Send(frame) => {
                                let _ = control_tx.send(frame);
                            }
                            Action::Reconnect { .. } => return,
                            Action::Deliver(_) | Action::Ready => {}
                        }
                    }
                }
            })
        };
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        let mut budget = 0.0f64;
        let mut id = FIRST_PUBLISH_ID;
        'conn: while !stop.load(Ordering::Relaxed) && !reader.is_finished() {
            tokio::select! {
                frame = control.recv() => {
                    let Some(frame) = frame else { break 'conn };
                    if tx.send(Message::Text(frame.into())).await.is_err() { break 'conn }
                }
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now();
                    let share = fleet.rate.load(Ordering::Relaxed) as f64 / fleet.publishers as f64;
                    budget = (budget + share * (now - last).as_secs_f64()).min(share * 0.1 + 1.0);
                    last = now;
                    while budget >= 1.0 {
                        budget -= 1.0;
                        let k = next % channels.len();
                        next += 1;
                        seqs[k] += 1;
                        id += 1;
                        let stamp = Stamp { channel: channels[k], seq: seqs[k], sent_us: stats.now_us() };
                        pending.lock().expect("pending lock").insert(id, (channels[k], seqs[k]));
                        let frame = fleet.system.publish(channels[k], &payload::encode(stamp, fleet.payload), id);
                        if tx.feed(Message::Text(frame.into())).await.is_err() { break 'conn }
                        stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx.flush().await.is_err() { break 'conn }
                }
            }
        }
        // Give acknowledgements in flight a moment, then count the rest as unconfirmed.
        if stop.load(Ordering::Relaxed) {
            for _ in 0..50 {
                if pending.lock().expect("pending lock").is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        reader.abort();
        let lost = pending.lock().expect("pending lock").len() as u64;
        if lost > 0 {
            eprintln!("publisher {index}: connection {} ended with {lost} publications unconfirmed", fleet.addrs[at % fleet.addrs.len()]);
        }
        stats.unconfirmed.fetch_add(lost, Ordering::Relaxed);
        at += 1;
    }
}

/// One idle client: connects, answers pings, holds until `stop`.
pub async fn idle(
    fleet: Arc<Fleet>,
    client: usize,
    mut stop: watch::Receiver<bool>,
    connecting: OwnedSemaphorePermit,
) -> anyhow::Result<()> {
    let mut conn = Conn::default();
    let mut ws = connect(&fleet, client, client, &mut conn, |_| {}).await?;
    drop(connecting);
    fleet.stats.became_ready(None);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => fleet.system.on_frame(&text, &mut conn, &mut out),
                Some(Ok(_)) => {}
                _ => anyhow::bail!("idle connection closed by the server"),
            },
        }
        for action in out.drain(..) {
            if let Action::Send(frame) = action {
                ws.send(Message::Text(frame.into())).await?;
            }
        }
    }
}
