//! The generator's clients. A subscriber holds one channel, records every delivery and
//! reconnects (to the next instance, resuming where the protocol allows) whenever it is
//! told to go or its connection drops. Publishers are in `publisher.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::net::{self, Ws};
use crate::payload::Stamp;
use crate::stats::{Seqs, Stats};
use crate::systems::{Action, Conn, System};

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

impl Fleet {
    /// The instance client (or publisher) `who` goes to after `at`: any other one, picked
    /// by a hash of both, as a client of a Service's one address lands on any ready pod.
    /// Always the next one piled every client of a rolling replacement onto the instance
    /// drained last (10,000 clients moved by its drain alone).
    pub fn another(&self, at: usize, who: usize) -> usize {
        another_of(self.addrs.len(), at, ((who as u64) << 32) ^ at as u64)
    }
}

/// [`Fleet::another`] among `count` instances, picked by `seed`.
fn another_of(count: usize, at: usize, seed: u64) -> usize {
    match count as u64 {
        0 | 1 => at + 1,
        n => at + 1 + (crate::systems::splitmix64(seed) % (n - 1)) as usize,
    }
}

/// Opens a connection to `addrs[at]` and runs the protocol until the client is ready;
/// actions that arrive before (backfill) are handed to `on_action`.
pub(crate) async fn connect(
    fleet: &Fleet,
    at: usize,
    client: usize,
    conn: &mut Conn,
    mut on_action: impl FnMut(&Action),
) -> anyhow::Result<Ws> {
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
        let opened = connect(&fleet, at, client, &mut conn, |a| match a {
            Action::Deliver(stamp) => deliver(*stamp, &mut received),
            Action::Resumed(resumed) => stats.resume(*resumed),
            _ => {}
        });
        let mut ws = match opened.await {
            Ok(ws) => ws,
            Err(e) => {
                // The first few reasons go to the log: a count alone does not say what failed.
                if stats.connect_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("subscriber {client}: connect failed: {e:#}");
                }
                down_since.get_or_insert_with(|| stats.now_us());
                at = fleet.another(at, client);
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
                    Action::Resumed(resumed) => stats.resume(resumed),
                    Action::Ready | Action::Ack { .. } => {}
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        stats.went_down();
        down_since = Some(stats.now_us());
        at = fleet.another(at, client);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_moves_to_another_instance_and_clients_spread_over_all_the_others() {
        for count in [2usize, 3, 5] {
            let mut landed = vec![0usize; count];
            for client in 0..3000u64 {
                let at = client as usize;
                let next = another_of(count, at, client << 32 ^ at as u64);
                assert_ne!(next % count, at % count, "a client leaves the instance it was on");
                landed[(next + count - at % count) % count] += 1;
            }
            // Relative to where each client was: every other instance takes its share.
            assert_eq!(landed[0], 0);
            for share in &landed[1..] {
                let even = 3000 / (count - 1);
                assert!(share.abs_diff(even) < even / 5, "{count} instances: {landed:?}");
            }
        }
        assert_eq!(another_of(1, 7, 42), 8);
    }
}
