//! One WebSocket connection: a reader that answers requests in order, a writer that
//! drains a bounded send queue with write coalescing, keepalive pings and an idle timeout.
//!
//! The hub never waits on a connection: it offers frames to the send queue, and a full
//! queue marks the connection slow. The writer then tells the client to reconnect (it
//! resumes with `since` on any pod) and closes, so one slow client cannot stall fan-out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::Instrument;

use crate::app::AppState;
use crate::clock::unix_ms;
use crate::delivery::hub::{ConnSignals, Outbox};
use crate::delivery::offset::{Offset, Position};
use crate::delivery::recovery::Subscribe;
use crate::delivery::session::Session;
use crate::edge::auth::{Action, Identity};
use crate::edge::protocol::{self, ErrorCode, Op, ProtocolError, Request};
use crate::edge::resume_token::TokenError;

pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Frames written before one flush: bounds the latency a burst adds to its first frame.
const COALESCE: usize = 64;

struct Conn {
    app: Arc<AppState>,
    identity: Identity,
    /// Its subscriptions and positions, checkpointed to Redis (`session.rs`).
    session: Arc<Session>,
    /// Resumed from a token: presence re-joins silently.
    resumed: bool,
    outbox: Outbox,
}

/// What the client asked to resume: `?resume=<token>` and, optionally, `?since=` with the
/// positions it has per channel (they win over the session's checkpoint).
#[derive(Default)]
pub struct Resume {
    pub token: Option<String>,
    pub positions: HashMap<String, Position>,
}

/// Serves one upgraded connection until it closes. `_permit` holds its connection slot.
pub async fn serve(ws: Ws, app: Arc<AppState>, identity: Identity, conn_id: u64, resume: Resume, permit: OwnedSemaphorePermit) {
    let span = tracing::debug_span!("conn", id = conn_id, user = %identity.user);
    serve_in_span(ws, app, identity, conn_id, resume, permit).instrument(span).await
}

/// A resume token for the session, issued when sent (`welcome`, `reconnect`) so that a
/// connection older than the resume window never hands out an expired one.
fn resume_token(app: &AppState, session: &Session) -> String {
    let expires = unix_ms() / 1000 + app.config.resume_window.as_secs();
    app.resume_keys.issue(&session.id, &session.user, expires)
}

/// The session of a new connection: the resumed one when `resume` holds a valid token for
/// this user, else a fresh one (with the reason the token was refused).
fn session_for(app: &AppState, identity: &mut Identity, resume: Option<&str>) -> (String, bool, Option<TokenError>) {
    let fresh = || format!("{:032x}", rand::random::<u128>());
    let Some(token) = resume else { return (fresh(), false, None) };
    match app.resume_keys.verify(token, unix_ms() / 1000) {
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

async fn serve_in_span(ws: Ws, app: Arc<AppState>, mut identity: Identity, conn_id: u64, resume: Resume, _permit: OwnedSemaphorePermit) {
    app.metrics.connections.inc();
    app.metrics.connections_total.inc();
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel(app.config.send_queue);
    let signals = Arc::new(ConnSignals::default());
    let outbox = Outbox { id: conn_id, tx, signals: signals.clone() };
    let (session_id, resumed, refused) = session_for(&app, &mut identity, resume.token.as_deref());
    app.drain.register(conn_id, signals.clone());
    // Redis futures are boxed here and below: inlined, every idle connection's task would
    // carry their size for its whole life.
    let opened = Box::pin(app.sessions.open(session_id, &identity.user, conn_id, signals.clone(), resumed)).await;
    if resumed {
        app.metrics.sessions_resumed.inc();
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
        restore.truncate(app.config.max_subscriptions);
    }
    let session = opened.session;
    let mut conn = Conn { app: app.clone(), identity, session: session.clone(), resumed, outbox };
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<CloseFrame>();
    let names: Vec<String> = restore.iter().map(|(c, _)| c.clone()).collect();
    let state = session.state();
    conn.send(protocol::welcome_frame(
        &session.id,
        &resume_token(&app, &session),
        app.config.node_name.as_str(),
        resumed,
        &names,
        state.as_deref(),
    ))
    .await;
    let mut writer = tokio::spawn(write_loop(sink, rx, signals, close_rx, session.clone(), app.clone()));
    if let Some(e) = refused {
        conn.fail(ProtocolError::new(None, ErrorCode::ResumeRejected, format!("{e}; this is a new session"))).await;
    }
    for (channel, since) in restore {
        if let Err(e) = Box::pin(conn.subscribe(None, channel, since)).await {
            conn.fail(e).await;
        }
    }

    let close = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(app.config.idle_timeout, stream.next()) => next,
            // The writer ended (socket error, slow consumer, drain): the connection is over.
            _ = &mut writer => break close_frame(CloseCode::Normal, ""),
        };
        let msg = match next {
            Err(_) => break close_frame(CloseCode::Away, "idle timeout"),
            Ok(None) | Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => break close_frame(CloseCode::Normal, ""),
            Ok(Some(Err(WsError::Capacity(e)))) => {
                conn.send(protocol::error_frame(None, ErrorCode::TooLarge, &format!("frame too large: {e}"))).await;
                break close_frame(CloseCode::Size, "frame too large");
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket error");
                break close_frame(CloseCode::Protocol, "protocol error");
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            // Boxed: the request future is large and rarely alive; inlined, every idle
            // connection task would carry its size.
            Message::Text(text) => Box::pin(conn.handle(&text)).await,
            Message::Binary(_) => {
                conn.app.metrics.protocol_errors.inc();
                conn.send(protocol::error_frame(
                    None,
                    ErrorCode::BinaryUnsupported,
                    "binary frames are not supported; send JSON text frames",
                ))
                .await;
            }
            Message::Close(_) => break close_frame(CloseCode::Normal, ""),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    };
    let _ = close_tx.send(close);
    app.drain.unregister(conn_id);
    // The final checkpoint, before leaving the hub (positions are read from it).
    let _ = tokio::time::timeout(FAREWELL_GRACE, Box::pin(app.sessions.close(&session))).await;
    conn.leave_all().await;
    // Dropping the last outbox sender lets the writer finish its queue and close.
    drop(conn);
    if !writer.is_finished() {
        let _ = writer.await;
    }
    app.metrics.connections.dec();
}

fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame { code, reason: Utf8Bytes::from(reason) }
}

/// How long a client gets to take its farewell (queued frames for a drain, the reconnect
/// hint, the close frame) before the socket is dropped: one that stopped reading must not
/// hold its writer, or a drain, forever.
const FAREWELL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Jitter of the `delayMs` a drained client is asked to wait before reconnecting.
const MAX_RECONNECT_DELAY_MS: u64 = 500;

type Sink = futures_util::stream::SplitSink<Ws, Message>;

/// Writes one frame and whatever else is queued (up to [`COALESCE`]), then flushes once
/// and counts the frames as written (what session checkpoints trust).
async fn write_burst(sink: &mut Sink, rx: &mut mpsc::Receiver<Utf8Bytes>, first: Utf8Bytes, signals: &ConnSignals) -> Result<(), WsError> {
    sink.feed(Message::Text(first)).await?;
    let mut n = 1;
    for _ in 0..COALESCE {
        match rx.try_recv() {
            Ok(frame) => {
                sink.feed(Message::Text(frame)).await?;
                n += 1;
            }
            Err(_) => break,
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
async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    signals: Arc<ConnSignals>,
    mut close_rx: tokio::sync::oneshot::Receiver<CloseFrame>,
    session: Arc<Session>,
    app: Arc<AppState>,
) {
    let mut ping = tokio::time::interval(app.config.ping_interval);
    ping.tick().await;
    let farewell = loop {
        tokio::select! {
            biased;
            _ = signals.slow_wake.notified() => break Some(Farewell::Slow),
            _ = signals.drain_wake.notified() => break Some(Farewell::Drain),
            frame = rx.recv() => {
                let Some(frame) = frame else { break None };
                tokio::select! {
                    r = write_burst(&mut sink, &mut rx, frame, &signals) => if r.is_err() { return },
                    _ = signals.slow_wake.notified() => break Some(Farewell::Slow),
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() { return; }
            }
        }
    };
    let (hint, close) = match farewell {
        // Queued messages are dropped: the client recovers them with `since`.
        Some(Farewell::Slow) => {
            app.metrics.slow_consumer_disconnects.inc();
            (
                Some(protocol::reconnect_frame(&resume_token(&app, &session), 0, "slow_consumer")),
                Some(close_frame(CloseCode::Again, "send queue full")),
            )
        }
        Some(Farewell::Drain) => (None, Some(close_frame(CloseCode::Restart, "draining: reconnect elsewhere"))),
        None => (None, close_rx.try_recv().ok()),
    };
    let drained = matches!(farewell, Some(Farewell::Drain));
    let _ = tokio::time::timeout(FAREWELL_GRACE, async {
        while drained && let Ok(frame) = rx.try_recv() {
            write_burst(&mut sink, &mut rx, frame, &signals).await?;
        }
        // Checkpoint before the client is told to go, so the pod it reconnects to reads
        // where it is (a client without offsets resumes exactly, not from the last round).
        let hint = if drained {
            Box::pin(app.sessions.checkpoint(&session)).await;
            let delay = rand::random::<u64>() % MAX_RECONNECT_DELAY_MS;
            Some(protocol::reconnect_frame(&resume_token(&app, &session), delay, "drain"))
        } else {
            hint
        };
        if let Some(hint) = hint {
            sink.send(Message::Text(hint.into())).await?;
        }
        sink.send(Message::Close(close)).await?;
        sink.close().await
    })
    .await;
}

impl Conn {
    /// Queues a reply, waiting for space: replies are never dropped.
    async fn send(&self, frame: String) {
        self.outbox.send(Utf8Bytes::from(frame)).await;
    }

    async fn fail(&self, e: ProtocolError) {
        self.app.metrics.protocol_errors.inc();
        self.send(e.to_frame()).await;
    }

    fn authorise(&self, id: Option<u64>, action: Action, channel: &str) -> Result<(), ProtocolError> {
        if self.identity.may(action, channel) {
            Ok(())
        } else {
            let verb = if action == Action::Subscribe { "subscribe to" } else { "publish to" };
            Err(ProtocolError::new(id, ErrorCode::Forbidden, format!("your token does not allow you to {verb} {channel:?}")))
        }
    }

    async fn handle(&mut self, text: &str) {
        let result = match protocol::parse_request(text) {
            Ok(req) => self.dispatch(req).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.fail(e).await;
        }
    }

    async fn dispatch(&mut self, Request { id, op }: Request) -> Result<(), ProtocolError> {
        let unavailable = |e: &dyn std::fmt::Display| ProtocolError::new(id, ErrorCode::Unavailable, format!("Redis is unavailable: {e}"));
        match op {
            Op::Ping => self.send(protocol::reply_frame(id, json!({"pong": true}))).await,
            Op::Subscribe { channel, since } => self.subscribe(id, channel, since).await?,
            Op::Unsubscribe { channel } => {
                if !self.session.unsubscribed(&channel) {
                    return Err(ProtocolError::new(id, ErrorCode::NotSubscribed, format!("not subscribed to {channel:?}")));
                }
                self.app.hub.leave(&channel, self.outbox.id);
                if let Err(e) = self.app.presence.leave(&channel, &self.session.id, &self.identity.user).await {
                    tracing::warn!(%channel, error = %e, "presence leave failed");
                }
                self.send(protocol::reply_frame(id, json!({"channel": channel}))).await;
            }
            Op::Publish { channel, data } => {
                self.authorise(id, Action::Publish, &channel)?;
                let (offset, epoch) = self.app.store.publish(&channel, &data).await.map_err(|e| unavailable(&e))?;
                self.app.metrics.messages_in.inc();
                self.send(protocol::reply_frame(id, json!({"channel": channel, "offset": offset.to_string(), "epoch": epoch}))).await;
            }
            Op::Presence { channel } => {
                self.authorise(id, Action::Subscribe, &channel)?;
                let members = self.app.presence.list(&channel).await.map_err(|e| unavailable(&e))?;
                let mut frame = json!({"type": "presence", "channel": channel, "members": members});
                if let Some(id) = id {
                    frame["id"] = json!(id);
                }
                self.send(frame.to_string()).await;
            }
            Op::Ephemeral { channel, key, data, ttl_ms } => {
                self.authorise(id, Action::Publish, &channel)?;
                self.app.presence.ephemeral(&channel, &key, &self.identity.user, &data, ttl_ms).await.map_err(|e| unavailable(&e))?;
                self.send(protocol::reply_frame(id, json!({"channel": channel}))).await;
            }
            Op::History { channel, since, limit } => {
                self.authorise(id, Action::Subscribe, &channel)?;
                let after = since.as_ref().map_or(Offset::ZERO, |p| p.offset);
                let page = self.app.store.read(&channel, after, limit as u32).await.map_err(|e| unavailable(&e))?;
                let gap = since.as_ref().and_then(|s| crate::delivery::offset::gap_for(s, &page.epoch, page.first, page.last));
                let same_epoch = since.as_ref().is_none_or(|s| s.epoch == page.epoch);
                let mut messages = Vec::with_capacity(page.entries.len());
                for (offset, data) in page.entries.iter().filter(|_| same_epoch) {
                    let data =
                        RawValue::from_string(data.clone()).map_err(|e| ProtocolError::new(id, ErrorCode::Internal, e.to_string()))?;
                    messages.push(json!({"offset": offset.to_string(), "data": data}));
                }
                self.send(protocol::reply_frame(
                    id,
                    json!({"channel": channel, "epoch": page.epoch, "offset": page.last.to_string(),
                           "gap": gap.as_ref().map(protocol::gap_json), "messages": messages}),
                ))
                .await;
            }
        }
        Ok(())
    }

    /// Subscribes (with `id: None` when restoring a resumed session): the one path for a
    /// `subscribe` request and a restored subscription.
    async fn subscribe(&mut self, id: Option<u64>, channel: String, since: Option<Position>) -> Result<(), ProtocolError> {
        self.authorise(id, Action::Subscribe, &channel)?;
        if self.session.is_subscribed(&channel) {
            return Err(ProtocolError::new(id, ErrorCode::AlreadySubscribed, format!("already subscribed to {channel:?}")));
        }
        if self.session.subscription_count() >= self.app.config.max_subscriptions {
            return Err(ProtocolError::new(
                id,
                ErrorCode::TooManySubscriptions,
                format!("at most {} subscriptions per connection", self.app.config.max_subscriptions),
            ));
        }
        let sub = Subscribe {
            hub: &self.app.hub,
            store: &self.app.store,
            metrics: &self.app.metrics,
            outbox: &self.outbox,
            page_size: self.app.config.recovery_page,
        };
        let start = match sub.run(id, &channel, since).await {
            Ok(start) => start,
            Err(e) => {
                self.app.hub.leave(&channel, self.outbox.id);
                return Err(ProtocolError::new(id, ErrorCode::Unavailable, format!("Redis is unavailable: {e}")));
            }
        };
        self.session.subscribed(&channel, start);
        if let Err(e) = self.app.presence.join(&channel, &self.session.id, &self.identity.user, !self.resumed).await {
            tracing::warn!(%channel, error = %e, "presence join failed");
        }
        Ok(())
    }

    async fn leave_all(&mut self) {
        // A drained client is coming back elsewhere: keep its presence, announce nothing.
        let handing_off = self.outbox.signals.drain.load(Ordering::Relaxed);
        for channel in self.session.channels() {
            self.app.hub.leave(&channel, self.outbox.id);
            if handing_off {
                self.app.presence.hand_off(&channel, &self.session.id, &self.identity.user);
            } else if let Err(e) = self.app.presence.leave(&channel, &self.session.id, &self.identity.user).await {
                tracing::debug!(%channel, error = %e, "presence leave failed");
            }
        }
    }
}
