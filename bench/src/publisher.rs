//! The generator's publishers. Each publishes the channels it owns at its share of the
//! target rate and records which publications the system acknowledged.
//!
//! When the server tells a publisher to go (a drain), it does what the system's client
//! library does: it stops sending on the old connection but keeps reading its answers
//! while it opens the next one, and closes the old one once nothing is in flight on it
//! (at most [`SWITCH_WAIT`]). A publication whose outcome stayed unknown (the connection
//! ended before its answer) is sent again on the next connection with the same publish id
//! where the protocol makes that safe (`System::idempotent_publish`, as SocketFleet's
//! client library does); otherwise it counts as unconfirmed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::clients::{Fleet, connect};
use crate::net::Ws;
use crate::payload::{self, Stamp};
use crate::systems::{Action, Conn, FIRST_PUBLISH_ID};

/// How long an old connection is kept for the answers still due on it.
const SWITCH_WAIT: Duration = Duration::from_secs(5);

/// How often one publication is sent again before it counts as unconfirmed (the TypeScript
/// client's default `publishRetries`).
const MAX_RETRIES: u32 = 3;

/// One publication: its channel, sequence number and how often it was sent again.
#[derive(Clone, Copy)]
struct Publication {
    channel: u32,
    seq: u64,
    retries: u32,
}

impl Publication {
    /// Its publish id: unique to this generator process, because publish ids outlive a run
    /// in Redis and a later run over the same channels (the L3 test runs several) would
    /// otherwise be answered "already stored" for publications it never made.
    fn pid(&self) -> String {
        format!("{}-{}-{}", run_id(), self.channel, self.seq)
    }
}

/// This process's run id: its start time and pid, in hex.
fn run_id() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{:x}{:x}", nanos as u64, std::process::id())
    })
}

/// Publications sent on one connection and not answered yet, by request id.
type Pending = Arc<Mutex<HashMap<u64, Publication>>>;

/// Publications whose outcome is unknown, waiting to be sent again.
type Retries = Arc<Mutex<Vec<Publication>>>;

/// One publisher of `channels` until `stop`.
pub async fn publisher(fleet: Arc<Fleet>, index: usize, channels: Vec<u32>, stop: Arc<AtomicBool>) {
    let stats = &fleet.stats;
    let mut seqs = vec![0u64; channels.len()];
    let mut next = 0usize;
    let mut at = index;
    let mut id = FIRST_PUBLISH_ID;
    let retries: Retries = Arc::default();
    let mut old_connections = JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        let mut conn = Conn::default();
        let ws = match connect(&fleet, at, 1_000_000 + index, &mut conn, |_| {}).await {
            Ok(ws) => ws,
            Err(_) => {
                stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                at = fleet.another(at, index);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (mut tx, rx) = ws.split();
        let pending: Pending = Arc::default();
        let told_to_go = Arc::new(Notify::new());
        let (control_tx, mut control) = mpsc::unbounded_channel::<String>();
        let mut reader = tokio::spawn(read_answers(fleet.clone(), rx, conn, pending.clone(), control_tx, told_to_go.clone()));
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        let mut budget = 0.0f64;
        let send = async |tx: &mut SplitSink<Ws, Message>, p: Publication, id: u64| {
            let stamp = Stamp { channel: p.channel, seq: p.seq, sent_us: stats.now_us() };
            pending.lock().expect("pending lock").insert(id, p);
            let frame = fleet.system.publish(p.channel, &payload::encode(stamp, fleet.payload), id, &p.pid());
            tx.feed(Message::Text(frame.into())).await
        };
        'conn: while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                _ = told_to_go.notified() => break 'conn,
                _ = &mut reader => break 'conn,
                frame = control.recv() => {
                    let Some(frame) = frame else { break 'conn };
                    if tx.send(Message::Text(frame.into())).await.is_err() { break 'conn }
                }
                _ = tick.tick() => {
                    let again = std::mem::take(&mut *retries.lock().expect("retries lock"));
                    for p in again {
                        id += 1;
                        stats.retried.fetch_add(1, Ordering::Relaxed);
                        if send(&mut tx, p, id).await.is_err() { break 'conn }
                    }
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
                        if send(&mut tx, Publication { channel: channels[k], seq: seqs[k], retries: 0 }, id).await.is_err() { break 'conn }
                        stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx.flush().await.is_err() { break 'conn }
                }
            }
        }
        let addr = fleet.addrs[at % fleet.addrs.len()].clone();
        old_connections.spawn(finish_connection(fleet.clone(), index, addr, tx, reader, pending, retries.clone()));
        at = fleet.another(at, index);
    }
    // The run is over: what is still in flight gets its answers (or retries) first.
    while old_connections.join_next().await.is_some() {}
    let left = std::mem::take(&mut *retries.lock().expect("retries lock"));
    stats.unconfirmed.fetch_add(left.len() as u64, Ordering::Relaxed);
}

/// Reads one connection's answers until it ends: acknowledgements go to the ledger, frames
/// the protocol asks for go to `control`, and a request to go wakes `told_to_go` (the
/// answers still due keep being read).
async fn read_answers(
    fleet: Arc<Fleet>,
    mut rx: SplitStream<Ws>,
    mut conn: Conn,
    pending: Pending,
    control: mpsc::UnboundedSender<String>,
    told_to_go: Arc<Notify>,
) {
    let mut out = Vec::new();
    while let Some(Ok(message)) = rx.next().await {
        let Message::Text(text) = message else { continue };
        fleet.system.on_frame(&text, &mut conn, &mut out);
        for action in out.drain(..) {
            match action {
                Action::Ack { id, ok } => {
                    let Some(p) = pending.lock().expect("pending lock").remove(&id) else { continue };
                    if ok {
                        fleet.stats.acked.fetch_add(1, Ordering::Relaxed);
                        fleet.acked[p.channel as usize].lock().expect("ledger lock").insert(p.seq);
                    } else {
                        fleet.stats.publish_failed();
                    }
                }
                Action::Send(frame) => {
                    let _ = control.send(frame);
                }
                Action::Reconnect { .. } => told_to_go.notify_one(),
                Action::Deliver(_) | Action::Ready | Action::Resumed(_) => {}
            }
        }
    }
}

/// Ends a connection the publisher has left: waits (at most [`SWITCH_WAIT`]) until nothing
/// is in flight on it or it ended, closes it, and hands what stayed unanswered to the
/// retries (or counts it unconfirmed).
async fn finish_connection(
    fleet: Arc<Fleet>,
    index: usize,
    addr: String,
    mut tx: SplitSink<Ws, Message>,
    mut reader: tokio::task::JoinHandle<()>,
    pending: Pending,
    retries: Retries,
) {
    let deadline = tokio::time::Instant::now() + SWITCH_WAIT;
    while !reader.is_finished() && !pending.lock().expect("pending lock").is_empty() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = &mut reader => break,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
    reader.abort();
    let unanswered: Vec<Publication> = pending.lock().expect("pending lock").drain().map(|(_, p)| p).collect();
    if unanswered.is_empty() {
        return;
    }
    let (again, lost): (Vec<_>, Vec<_>) =
        unanswered.into_iter().partition(|p| fleet.system.idempotent_publish() && p.retries < MAX_RETRIES);
    if !lost.is_empty() {
        eprintln!("publisher {index}: connection {addr} ended with {} publications unconfirmed", lost.len());
        fleet.stats.unconfirmed.fetch_add(lost.len() as u64, Ordering::Relaxed);
    }
    retries.lock().expect("retries lock").extend(again.into_iter().map(|p| Publication { retries: p.retries + 1, ..p }));
}
