//! One WebSocket connection's transport: the session it resumes or starts, the reader loop
//! with its idle timeout and frame checks, and the close. Requests are answered in
//! `dispatch.rs`; the writer that drains the send queue is `writer.rs`.
//!
//! The hub never waits on a connection: it offers frames to the send queue, and a full
//! queue marks the connection slow. The writer then tells the client to reconnect (it
//! resumes with `since` on any pod) and closes, so one slow client cannot stall fan-out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError as WsProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use crate::clock::unix_ms;
use crate::delivery::hub::{ConnSignals, Outbox};
use crate::delivery::offset::Position;
use crate::delivery::send_queue::SendQueue;
use crate::delivery::session::Session;
use crate::edge::auth::{Identity, LEEWAY_SECS};
use crate::edge::dispatch::Conn;
use crate::edge::expiry;
use crate::edge::protocol::{self, ErrorCode, ProtocolError};
use crate::edge::resume_token::TokenError;
use crate::edge::server::Edge;
use crate::edge::socket::{Io, RawFrames};
use crate::edge::writer::{FAREWELL_GRACE, close_frame, write_loop};

pub type Ws = WebSocketStream<Io>;

/// A connection's sending half: its writer's, or the queue's while the writer is idle.
/// Frames go through tungstenite (`ws`), or, for a direct write (`writer.rs`), straight
/// to the socket when it is at a frame boundary (`raw`).
pub struct Sink {
    pub ws: futures_util::stream::SplitSink<Ws, Message>,
    pub raw: RawFrames,
}

/// What the client asked to resume: `?resume=<token>` and, optionally, `?since=` with the
/// positions it has per channel (they win over the session's checkpoint).
#[derive(Default)]
pub struct Resume {
    pub token: Option<String>,
    pub positions: HashMap<String, Position>,
}

/// Serves one upgraded connection until it closes. `permit` holds its connection slot.
///
/// Not an `async fn`, and the socket is split and the opening boxed before the long-lived
/// future is made: a future keeps room for its arguments (and for a future it awaits by
/// value) for its whole life, and this one lives as long as the connection, so every idle
/// connection would pay for the unsplit socket and the opening's state.
pub fn serve(
    ws: Ws,
    raw: RawFrames,
    edge: Arc<Edge>,
    identity: Identity,
    conn_id: u64,
    resume: Resume,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    let span = tracing::debug_span!("conn", id = conn_id, user = %identity.user);
    let (ws, stream) = ws.split();
    let opening = Box::pin(open(Sink { ws, raw: raw.clone() }, edge.clone(), identity, conn_id, resume));
    serve_in_span(opening, stream, raw, edge, permit).instrument(span)
}

/// A resume token for the session, issued when sent (`welcome`, `reconnect`) so that a
/// connection older than the resume window never hands out an expired one. It is valid for
/// the resume window, never past the identity's own expiry (a drain must not extend a
/// login).
pub(super) fn resume_token(edge: &Edge, session: &Session) -> String {
    let mut expires = unix_ms() / 1000 + edge.config.resume_window.as_secs();
    let identity_expires = session.identity_expires.load(Ordering::Relaxed);
    if identity_expires > 0 {
        expires = expires.min(identity_expires);
    }
    edge.resume_keys.issue(&session.id, &session.user, expires)
}

/// The session of a new connection: the resumed one when `resume` holds a valid token for
/// this user, else a fresh one (with the reason the token was refused).
fn session_for(edge: &Edge, identity: &mut Identity, resume: Option<&str>) -> (String, bool, Option<TokenError>) {
    let fresh = || format!("{:032x}", rand::random::<u128>());
    let Some(token) = resume else { return (fresh(), false, None) };
    match edge.resume_keys.verify(token, unix_ms() / 1000) {
        // Without auth, users are named per connection: the resumed one takes its old name
        // back (presence and the stored session know it by that name).
        Ok(r) if identity.grants.is_none() => {
            identity.user = r.user;
            (r.session, true, None)
        }
        // With auth the token's user must be the authenticated one.
        Ok(r) if r.user == identity.user => (r.session, true, None),
        Ok(_) => (fresh(), false, Some(TokenError::OtherUser)),
        Err(e) => (fresh(), false, Some(e)),
    }
}

/// A connection's life in three parts, so that an idle connection's task holds only the
/// middle one: opening (session, welcome, restored subscriptions) and closing (checkpoint,
/// presence) are boxed, each alive only while it runs.
async fn serve_in_span(
    opening: std::pin::Pin<Box<impl Future<Output = Open>>>,
    mut stream: futures_util::stream::SplitStream<Ws>,
    raw: RawFrames,
    edge: Arc<Edge>,
    _permit: OwnedSemaphorePermit,
) {
    edge.metrics.connections.inc();
    edge.metrics.connections_total.inc();
    let mut open = opening.await;
    let (close, ended) = read_requests(&mut open.conn, &mut stream, &mut open.writer).await;
    // From here nothing is written behind tungstenite's back: after the client's close
    // frame (tungstenite has answered it) no data frame may follow.
    raw.close();
    Box::pin(finish(open, close, ended)).await;
    edge.metrics.connections.dec();
}

/// An open connection: its request handler, its writer and what ending it needs.
struct Open {
    conn: Conn,
    writer: tokio::task::JoinHandle<()>,
    close_tx: tokio::sync::oneshot::Sender<CloseFrame>,
    queue: Arc<SendQueue>,
}

/// Opens the session (resumed or new), starts the writer with the welcome, and restores the
/// session's subscriptions.
async fn open(sink: Sink, edge: Arc<Edge>, mut identity: Identity, conn_id: u64, resume: Resume) -> Open {
    let queue = Arc::new(SendQueue::new(edge.config.send_queue, edge.direct_writes));
    // The writer's while it is idle (with direct writes, the welcome below is written from here).
    queue.park(sink);
    let signals = Arc::new(ConnSignals::default());
    let outbox = Outbox { id: conn_id, queue: queue.clone(), signals: signals.clone() };
    let (session_id, resumed, refused) = session_for(&edge, &mut identity, resume.token.as_deref());
    edge.drain.register(conn_id, signals.clone());
    let opened = Box::pin(edge.sessions.open(session_id, &identity.user, conn_id, signals.clone(), resumed)).await;
    if resumed {
        edge.metrics.sessions_resumed.inc();
    }
    // Restored: the session's subscriptions and any the client reports positions for.
    let mut restore: Vec<(String, Option<Position>)> = Vec::new();
    let mut positions = resume.positions;
    if resumed {
        for (channel, mark) in opened.restored.iter().flat_map(|doc| doc.channels.iter()) {
            let since = positions.remove(channel).or_else(|| mark.position());
            restore.push((channel.clone(), since));
        }
        restore.extend(positions.into_iter().map(|(c, p)| (c, Some(p))));
        restore.sort_by(|a, b| a.0.cmp(&b.0));
        restore.truncate(edge.config.max_subscriptions);
    }
    let session = opened.session;
    session.identity_expires.store(identity.expires.unwrap_or(0), Ordering::Relaxed);
    let mut conn = Conn { edge: edge.clone(), identity, session: session.clone(), resumed, outbox };
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<CloseFrame>();
    let names: Vec<String> = restore.iter().map(|(c, _)| c.clone()).collect();
    let state = session.state();
    conn.send(protocol::welcome_frame(
        &session.id,
        &resume_token(&edge, &session),
        edge.config.node_name.as_str(),
        resumed,
        &names,
        state.as_deref(),
    ))
    .await;
    let writer = tokio::spawn(write_loop(queue.clone(), signals, close_rx, session.clone(), edge.clone()));
    if let Some(e) = refused {
        conn.fail(ProtocolError::new(None, ErrorCode::ResumeRejected, format!("{e}; this is a new session"))).await;
    }
    for (channel, since) in restore {
        // A restored subscription that fails names its channel, so the client subscribes
        // again itself (the welcome listed it).
        if let Err(e) = Box::pin(conn.subscribe(None, channel.clone(), since)).await {
            conn.fail(e.with_channel(&channel)).await;
        }
    }

    Open { conn, writer, close_tx, queue }
}

/// How a connection ended, for presence: a client that said goodbye (its close frame) or
/// that we closed (expired token, a broken frame) has left; one whose socket broke, went
/// silent or could not keep up may come back and resume, so its `leave` waits (see
/// `Presence::leave_unless_back`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ended {
    Left,
    Lost,
}

/// Reads and answers the client's requests until the connection is to end (the client
/// closed or broke it, it idled out, its token expired, the writer ended); the close frame
/// to send. Every await that is rare is boxed: this future is what an idle connection holds.
async fn read_requests(
    conn: &mut Conn,
    stream: &mut futures_util::stream::SplitStream<Ws>,
    writer: &mut tokio::task::JoinHandle<()>,
) -> (CloseFrame, Ended) {
    let mut warned = None;
    let mut token_timer = expiry::Timer::default();
    loop {
        token_timer.arm(conn.identity.expires, warned, unix_ms);
        let next = tokio::select! {
            next = tokio::time::timeout(conn.edge.config.idle_timeout, stream.next()) => next,
            // The writer ended (socket error, slow consumer, drain): the connection is over.
            _ = &mut *writer => return (close_frame(CloseCode::Normal, ""), Ended::Lost),
            step = token_timer.fired() => match step {
                expiry::Step::Warn { expires } => {
                    warned = Some(expires);
                    Box::pin(conn.send(protocol::expiring_frame(expires, expires + LEEWAY_SECS))).await;
                    continue;
                }
                expiry::Step::Expire { expires } => {
                    Box::pin(conn.fail(ProtocolError::new(
                        None,
                        ErrorCode::TokenExpired,
                        format!("your token expired at {expires} (Unix seconds); connect again with a fresh token"),
                    )))
                    .await;
                    return (close_frame(CloseCode::from(expiry::EXPIRED_CLOSE_CODE), "token expired"), Ended::Left);
                }
            },
        };
        let msg = match next {
            Err(_) => return (close_frame(CloseCode::Away, "idle timeout"), Ended::Lost),
            // The socket ended without a close frame: the client's side or the network broke.
            Ok(None) | Ok(Some(Err(WsError::Io(_) | WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake)))) => {
                return (close_frame(CloseCode::Normal, ""), Ended::Lost);
            }
            Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => return (close_frame(CloseCode::Normal, ""), Ended::Left),
            Ok(Some(Err(WsError::Capacity(e)))) => {
                Box::pin(conn.send(protocol::error_frame(None, ErrorCode::TooLarge, &format!("frame too large: {e}")))).await;
                return (close_frame(CloseCode::Size, "frame too large"), Ended::Left);
            }
            // RFC 6455 7.4.1: a text frame that is not UTF-8 closes with 1007, not 1002.
            Ok(Some(Err(WsError::Utf8(e)))) => {
                tracing::debug!(error = %e, "text frame is not valid UTF-8");
                return (close_frame(CloseCode::Invalid, "text frame is not valid UTF-8"), Ended::Left);
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket error");
                return (close_frame(CloseCode::Protocol, "protocol error"), Ended::Left);
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            // Boxed: the request future is large and rarely alive; inlined, every idle
            // connection task would carry its size.
            Message::Text(text) => Box::pin(conn.handle(&text)).await,
            Message::Binary(_) => {
                conn.edge.metrics.protocol_errors.inc();
                Box::pin(conn.send(protocol::error_frame(
                    None,
                    ErrorCode::BinaryUnsupported,
                    "binary frames are not supported; send JSON text frames",
                )))
                .await;
            }
            Message::Close(_) => return (close_frame(CloseCode::Normal, ""), Ended::Left),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Ends an open connection: the close frame to the writer, the final checkpoint, leaving
/// the hub and presence, then the writer's farewell.
async fn finish(open: Open, close: CloseFrame, ended: Ended) {
    let Open { mut conn, writer, close_tx, queue } = open;
    let (edge, session, conn_id) = (conn.edge.clone(), conn.session.clone(), conn.outbox.id);
    let _ = close_tx.send(close);
    edge.drain.unregister(conn_id);
    // The final checkpoint, before leaving the hub (positions are read from it).
    let _ = tokio::time::timeout(FAREWELL_GRACE, edge.sessions.close(&session)).await;
    conn.leave_all(ended).await;
    // Closing the queue lets the writer finish what is queued and close the socket.
    queue.close();
    drop(conn);
    if !writer.is_finished() {
        let _ = writer.await;
    }
}
