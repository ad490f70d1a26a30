//! A connection's writer: drains its bounded send queue (the outbox the hub offers frames
//! to) with write coalescing, pings, and takes the connection's farewell when the client is
//! slow or the pod drains (queued frames flushed, a checkpoint, the reconnect hint, replies
//! to what the client still sends until it switches, close).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::delivery::hub::ConnSignals;
use crate::delivery::send_queue::{CloseOnDrop, SendQueue};
use crate::delivery::session::Session;
use crate::edge::protocol::{self};
use crate::edge::server::Edge;

use crate::edge::connection::{Ws, resume_token};

/// Frames written before one flush: bounds the latency a burst adds to its first frame.
const COALESCE: usize = 64;

pub(super) fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame { code, reason: Utf8Bytes::from(reason) }
}

/// How long a client gets to take its farewell (queued frames for a drain, the reconnect
/// hint, the close frame) before the socket is dropped: one that stopped reading must not
/// hold its writer, or a drain, forever.
pub(super) const FAREWELL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a drained client is still answered after its `reconnect` hint: requests it sent
/// before it switched get their replies; it closes this connection once its new one is up
/// (the TypeScript client does), or the pod closes it when this has passed.
pub(super) const SWITCH_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

type Sink = futures_util::stream::SplitSink<Ws, Message>;

/// Writes one frame and whatever else is queued (up to [`COALESCE`]), then flushes once
/// and counts the frames as written (what session checkpoints trust).
async fn write_burst(sink: &mut Sink, rx: &SendQueue, first: Utf8Bytes, signals: &ConnSignals) -> Result<(), WsError> {
    sink.feed(Message::Text(first)).await?;
    let mut n = 1;
    for _ in 0..COALESCE {
        match rx.try_recv() {
            Some(frame) => {
                sink.feed(Message::Text(frame)).await?;
                n += 1;
            }
            None => break,
        }
    }
    sink.flush().await?;
    signals.written.fetch_add(n, Ordering::AcqRel);
    Ok(())
}

/// Why the writer is ending the connection itself.
enum Farewell {
    Slow,
    Drain,
}

/// Writes queued frames, coalescing bursts into one flush; pings; ends the connection when
/// the client is slow (abandoning a write blocked on it) or the pod drains (after flushing).
pub(super) async fn write_loop(
    mut sink: Sink,
    rx: Arc<SendQueue>,
    signals: Arc<ConnSignals>,
    close_rx: tokio::sync::oneshot::Receiver<CloseFrame>,
    session: Arc<Session>,
    edge: Arc<Edge>,
) {
    // However this ends, the queue is closed with it: a sender waiting for room is let go.
    let _close = CloseOnDrop(rx.clone());
    let mut ping = tokio::time::interval(edge.config.ping_interval);
    ping.tick().await;
    let farewell = 'serving: loop {
        if signals.slow.load(Ordering::Acquire) {
            break Some(Farewell::Slow);
        }
        if signals.drain.load(Ordering::Acquire) {
            break Some(Farewell::Drain);
        }
        tokio::select! {
            biased;
            // A flag was set: read at the top.
            _ = signals.wake.notified() => {}
            frame = rx.recv() => {
                let Some(frame) = frame else { break None };
                let burst = write_burst(&mut sink, &rx, frame, &signals);
                tokio::pin!(burst);
                loop {
                    tokio::select! {
                        r = &mut burst => if r.is_err() { return } else { break },
                        // A slow client's blocked write is abandoned; a drain lets it
                        // finish (the flag is read at the top).
                        _ = signals.wake.notified() => if signals.slow.load(Ordering::Acquire) { break 'serving Some(Farewell::Slow) },
                    }
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() { return; }
            }
        }
    };
    // Boxed: the farewell's state is large and needed once; inlined, every idle
    // connection's writer would carry it.
    Box::pin(take_farewell(farewell, sink, rx, signals, close_rx, session, edge)).await;
}

/// Ends the connection the writer is leaving: for a drain, the queued frames, a
/// checkpoint, the reconnect hint and answers until the client switches; for a slow client,
/// the reconnect hint; then the close frame.
async fn take_farewell(
    farewell: Option<Farewell>,
    mut sink: Sink,
    rx: Arc<SendQueue>,
    signals: Arc<ConnSignals>,
    mut close_rx: tokio::sync::oneshot::Receiver<CloseFrame>,
    session: Arc<Session>,
    edge: Arc<Edge>,
) {
    let (hint, close) = match farewell {
        // Queued messages are dropped: the client recovers them with `since`.
        Some(Farewell::Slow) => {
            edge.metrics.slow_consumer_disconnects.inc();
            (
                Some(protocol::reconnect_frame(&resume_token(&edge, &session), 0, "slow_consumer")),
                Some(close_frame(CloseCode::Again, "send queue full")),
            )
        }
        Some(Farewell::Drain) => (None, Some(close_frame(CloseCode::Restart, "draining: reconnect elsewhere"))),
        None => (None, close_rx.try_recv().ok()),
    };
    let drained = matches!(farewell, Some(Farewell::Drain));
    let told = tokio::time::timeout(FAREWELL_GRACE, async {
        while drained && let Some(frame) = rx.try_recv() {
            write_burst(&mut sink, &rx, frame, &signals).await?;
        }
        // Checkpoint before the client is told to go, so the pod it reconnects to reads
        // where it is (a client without offsets resumes exactly, not from the last round).
        let hint = if drained {
            Box::pin(edge.sessions.checkpoint(&session)).await;
            signals.handed_off.store(true, Ordering::Release);
            let jitter = edge.drain.reconnect_jitter().as_millis() as u64;
            let delay = rand::random::<u64>() % jitter.max(1);
            Some(protocol::reconnect_frame(&resume_token(&edge, &session), delay, "drain"))
        } else {
            hint
        };
        if let Some(hint) = hint {
            sink.send(Message::Text(hint.into())).await?;
        }
        Ok::<(), WsError>(())
    })
    .await;
    if !matches!(told, Ok(Ok(()))) {
        return;
    }
    // A drained client is still answered until it has switched: it closes this connection
    // (the reader then ends, and with it every sender of the queue), or the grace passes.
    if drained {
        let until = tokio::time::Instant::now() + SWITCH_GRACE;
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(frame) => if write_burst(&mut sink, &rx, frame, &signals).await.is_err() { return },
                    None => break,
                },
                _ = &mut close_rx => break,
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
    let _ = tokio::time::timeout(FAREWELL_GRACE, async {
        sink.send(Message::Close(close)).await?;
        sink.close().await
    })
    .await;
}
