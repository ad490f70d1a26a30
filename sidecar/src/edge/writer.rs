//! A connection's writer: drains its bounded send queue (the outbox the hub offers frames
//! to) with write coalescing, pings, and takes the connection's farewell when the client is
//! slow or the pod drains (queued frames flushed, a checkpoint, the reconnect hint, replies
//! to what the client still sends until it switches, close).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use futures_util::{Sink as _, SinkExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::delivery::hub::ConnSignals;
use crate::delivery::send_queue::{Checkout, CloseOnDrop, Direct, SendQueue, WriteNow};
use crate::delivery::session::Session;
use crate::edge::protocol::{self};
use crate::edge::server::Edge;

use crate::edge::connection::{Sink, resume_token};
use crate::edge::socket::RawWrite;

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

/// A direct write from the task that offers the frame (the hub's fan-out, a request's
/// reply). At a frame boundary of the byte stream the frame goes straight to the socket
/// (`socket.rs`); otherwise through tungstenite, polled once with a waker that does
/// nothing, since nobody waits on this write. The idle writer registered no waker for
/// writing, so none is replaced; whatever is not done at once (the socket's buffer full,
/// the reader holding the socket's lock) is left to the writer, which polls with its own
/// waker.
impl WriteNow for Sink {
    fn write_now(&mut self, frame: Utf8Bytes) -> Direct {
        match self.raw.try_text(&frame) {
            RawWrite::Written => return Direct::Written,
            RawWrite::Partial => return Direct::Buffered,
            RawWrite::Full => return Direct::Refused(frame),
            RawWrite::NotNow => {}
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut sink = Pin::new(&mut self.ws);
        if !matches!(sink.as_mut().poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            return Direct::Refused(frame);
        }
        // Taken from here on: a failure is the writer's to find (its flush fails the same
        // way and ends the connection).
        if sink.as_mut().start_send(Message::Text(frame)).is_err() {
            return Direct::Buffered;
        }
        match sink.poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => Direct::Written,
            _ => Direct::Buffered,
        }
    }
}

/// Writes what is queued (up to [`COALESCE`] frames) behind what direct writes left in the
/// socket's buffer (`unflushed`), flushes once, and counts both as written (what session
/// checkpoints trust). The number of queued frames written.
async fn write_burst(sink: &mut Sink, rx: &SendQueue, unflushed: u32, signals: &ConnSignals) -> Result<usize, WsError> {
    let mut n = 0;
    while n < COALESCE
        && let Some(frame) = rx.try_recv()
    {
        sink.ws.feed(Message::Text(frame)).await?;
        n += 1;
    }
    sink.ws.flush().await?;
    signals.written.fetch_add(n as u64 + u64::from(unflushed), Ordering::AcqRel);
    Ok(n)
}

/// Sends a keepalive ping behind what is queued (a ping never overtakes a frame: a new
/// connection's first frame is its `welcome`, even when its ping falls due while it
/// opens), then parks the socket again.
async fn ping(rx: &SendQueue, signals: &ConnSignals) -> Result<(), WsError> {
    let Checkout { socket: mut sink, unflushed } = rx.checkout().await;
    write_burst(&mut sink, rx, unflushed, signals).await?;
    sink.ws.send(Message::Ping(Default::default())).await?;
    rx.park(sink);
    Ok(())
}

/// Why the writer is ending the connection itself.
enum Farewell {
    Slow,
    Drain,
}

/// Writes queued frames, coalescing bursts into one flush; pings when told; ends the connection when
/// the client is slow (abandoning a write blocked on it) or the pod drains (after flushing).
/// The socket starts parked in the queue (not an argument: a future keeps room for its
/// arguments for its whole life, and every idle connection has this one), goes back there
/// after each write, and offers write to it directly meanwhile.
pub(super) async fn write_loop(
    rx: Arc<SendQueue>,
    signals: Arc<ConnSignals>,
    close_rx: tokio::sync::oneshot::Receiver<CloseFrame>,
    session: Arc<Session>,
    edge: Arc<Edge>,
) {
    // However this ends, the queue is closed with it: a sender waiting for room is let go.
    let _close = CloseOnDrop(rx.clone());
    let (farewell, held) = 'serving: loop {
        if signals.slow.load(Ordering::Acquire) {
            break (Some(Farewell::Slow), None);
        }
        if signals.drain.load(Ordering::Acquire) {
            break (Some(Farewell::Drain), None);
        }
        if signals.ping.swap(false, Ordering::AcqRel) {
            // Boxed: rare, and inlined every idle writer would carry its state.
            if Box::pin(ping(&rx, &signals)).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            biased;
            // A flag was set: read at the top.
            _ = signals.wake.notified() => {}
            more = rx.work() => {
                if !more { break (None, None) }
                let Checkout { socket: mut sink, unflushed } = rx.checkout().await;
                let slow = {
                    let burst = write_burst(&mut sink, &rx, unflushed, &signals);
                    tokio::pin!(burst);
                    loop {
                        tokio::select! {
                            r = &mut burst => if r.is_err() { return } else { break false },
                            // A slow client's blocked write is abandoned; a drain lets it
                            // finish (the flag is read at the top).
                            _ = signals.wake.notified() => if signals.slow.load(Ordering::Acquire) { break true },
                        }
                    }
                };
                if slow {
                    break 'serving (Some(Farewell::Slow), Some(Checkout { socket: sink, unflushed: 0 }));
                }
                rx.park(sink);
            }
        }
    };
    let held = match held {
        Some(held) => held,
        None => rx.checkout().await,
    };
    // Boxed: the farewell's state is large and needed once; inlined, every idle
    // connection's writer would carry it.
    Box::pin(take_farewell(farewell, held, rx, signals, close_rx, session, edge)).await;
}

/// Ends the connection the writer is leaving: for a drain, the queued frames, a
/// checkpoint, the reconnect hint and answers until the client switches; for a slow client,
/// the reconnect hint; then the close frame.
async fn take_farewell(
    farewell: Option<Farewell>,
    held: Checkout<Sink>,
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
    let Checkout { socket: mut sink, mut unflushed } = held;
    let told = tokio::time::timeout(FAREWELL_GRACE, async {
        // Everything queued, in bursts, behind what direct writes left unflushed.
        while drained && write_burst(&mut sink, &rx, std::mem::take(&mut unflushed), &signals).await? > 0 {}
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
            sink.ws.send(Message::Text(hint.into())).await?;
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
                more = rx.work() => match more {
                    true => if write_burst(&mut sink, &rx, 0, &signals).await.is_err() { return },
                    false => break,
                },
                _ = &mut close_rx => break,
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
    let _ = tokio::time::timeout(FAREWELL_GRACE, async {
        sink.ws.send(Message::Close(close)).await?;
        sink.ws.close().await
    })
    .await;
}
