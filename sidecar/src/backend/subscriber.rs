//! Our own sharded pub/sub subscriber.
//!
//! The `redis` crate batches multi-slot SSUBSCRIBE (Redis answers CROSSSLOT) and treats a
//! server-sent `sunsubscribe` as final, so it cannot follow failovers and slot migrations.
//! This layer owns its sockets instead:
//!
//! - an actor task keeps the wanted channels and which node each is subscribed on;
//! - one subscribe-only connection per node, one `SSUBSCRIBE` per channel (each channel is
//!   its own hash tag, so one slot);
//! - a channel is re-resolved when its node's connection drops, when the server sends
//!   `sunsubscribe` (slot migrated, primary demoted), when SSUBSCRIBE is answered with an
//!   error such as MOVED, and on a periodic poll of the slot map;
//! - after every *re*-subscription the [`MessageSink`] is told, so it can backfill from the
//!   stream what was published while the channel was not subscribed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::Addr;
use super::resp::{self, Resp};
use super::router::Router;
use super::slot::key_slot;

/// Receives what the subscriber hears.
pub trait MessageSink: Send + Sync + 'static {
    /// A publication on `channel` (the client-facing name), payload as published.
    fn on_message(&self, channel: &str, payload: Bytes);
    /// `channel` was subscribed again after a loss; anything published meanwhile was missed.
    fn on_resubscribed(&self, channel: &str);
    /// A node connection was lost (for metrics).
    fn on_node_down(&self, addr: &str);
}

pub use crate::store::keys::{client_channel, shard_channel};

enum Cmd {
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
    Confirmed { addr: Addr, generation: u64, channel: String },
    Lost { addr: Addr, generation: u64, channel: String },
    Down { addr: Addr, generation: u64 },
}

enum NodeCmd {
    /// SSUBSCRIBE a shard channel; `again`: it was confirmed before (on any node), so its
    /// confirmation must start a backfill.
    Subscribe {
        shard: String,
        again: bool,
    },
    Unsubscribe(String),
}

/// The subscribed channel could not be confirmed (the subscriber has stopped).
#[derive(Debug, thiserror::Error)]
#[error("the Redis subscriber has stopped")]
pub struct SubscriberStopped;

/// Handle to the subscriber actor. Cheap to clone.
#[derive(Clone)]
pub struct Subscriber {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Subscriber {
    /// Starts the actor. It runs until every handle is dropped.
    pub fn start(router: Arc<Router>, sink: Arc<dyn MessageSink>, poll: Duration) -> Subscriber {
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            router,
            sink,
            tx: tx.downgrade(),
            channels: HashMap::new(),
            nodes: HashMap::new(),
            next_gen: 0,
            dirty: false,
            backoff: MIN_RETRY,
            poll,
        };
        tokio::spawn(actor.run(rx));
        Subscriber { tx }
    }

    /// Subscribes `channel`; resolves once Redis confirmed the SSUBSCRIBE, so that every
    /// publication after this returns is delivered.
    pub async fn subscribe(&self, channel: &str) -> Result<(), SubscriberStopped> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Cmd::Subscribe(channel.to_string(), done)).map_err(|_| SubscriberStopped)?;
        wait.await.map_err(|_| SubscriberStopped)
    }

    pub fn unsubscribe(&self, channel: &str) {
        let _ = self.tx.send(Cmd::Unsubscribe(channel.to_string()));
    }
}

#[derive(Default)]
struct ChannelSub {
    node: Option<(Addr, u64)>,
    confirmed: bool,
    ever_confirmed: bool,
    waiters: Vec<oneshot::Sender<()>>,
}

struct NodeConn {
    generation: u64,
    tx: mpsc::UnboundedSender<NodeCmd>,
}

struct Actor {
    router: Arc<Router>,
    sink: Arc<dyn MessageSink>,
    /// Weak, so the actor stops when the last [`Subscriber`] handle is dropped.
    tx: mpsc::WeakUnboundedSender<Cmd>,
    channels: HashMap<String, ChannelSub>,
    nodes: HashMap<Addr, NodeConn>,
    next_gen: u64,
    /// Some channel is not assigned to a node: re-resolve after `backoff`.
    dirty: bool,
    backoff: Duration,
    poll: Duration,
}

const MIN_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut poll = tokio::time::interval(self.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry = tokio::time::sleep(self.backoff);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
                _ = poll.tick() => self.reconcile().await,
                _ = retry, if self.dirty => {
                    self.reconcile().await;
                    // Reset only once everything is confirmed: a dead node that is still in
                    // the slot map (failover pending) would otherwise be retried every 50 ms.
                    let settled = self.channels.values().all(|s| s.confirmed);
                    self.backoff = if settled { MIN_RETRY } else { (self.backoff * 2).min(MAX_RETRY) };
                }
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Subscribe(channel, done) => {
                let sub = self.channels.entry(channel.clone()).or_default();
                if sub.confirmed {
                    let _ = done.send(());
                    return;
                }
                sub.waiters.push(done);
                if sub.node.is_none() {
                    let owner = self.router.slot_map().owner(key_slot(shard_channel(&channel).as_bytes())).cloned();
                    match owner {
                        Some(addr) => self.assign(&channel, addr),
                        None => self.dirty = true,
                    }
                }
            }
            Cmd::Unsubscribe(channel) => {
                if let Some(sub) = self.channels.remove(&channel)
                    && let Some((addr, generation)) = sub.node
                    && let Some(node) = self.nodes.get(&addr).filter(|n| n.generation == generation)
                {
                    let _ = node.tx.send(NodeCmd::Unsubscribe(shard_channel(&channel)));
                }
            }
            Cmd::Confirmed { addr, generation, channel } => {
                let Some(sub) = self.channels.get_mut(&channel) else { return };
                if sub.node.as_ref() != Some(&(addr, generation)) {
                    return;
                }
                // A re-subscription was reported to the sink by the node task itself, at the
                // confirmation's place among the node's frames (see `NodeTask::dispatch`).
                sub.confirmed = true;
                for w in sub.waiters.drain(..) {
                    let _ = w.send(());
                }
                sub.ever_confirmed = true;
            }
            Cmd::Lost { addr, generation, channel } => {
                if let Some(sub) = self.channels.get_mut(&channel)
                    && sub.node.as_ref() == Some(&(addr, generation))
                {
                    tracing::info!(%channel, "shard subscription lost; re-resolving");
                    sub.node = None;
                    sub.confirmed = false;
                    self.dirty = true;
                }
            }
            Cmd::Down { addr, generation } => {
                if self.nodes.get(&addr).is_some_and(|n| n.generation == generation) {
                    self.nodes.remove(&addr);
                }
                self.sink.on_node_down(&addr);
                for sub in self.channels.values_mut() {
                    if sub.node.as_ref() == Some(&(addr.clone(), generation)) {
                        sub.node = None;
                        sub.confirmed = false;
                        self.dirty = true;
                    }
                }
            }
        }
    }

    /// Re-resolves the slot map and moves every channel to the node that owns it now.
    async fn reconcile(&mut self) {
        let map = match self.router.refresh().await {
            Ok(map) => map,
            Err(e) => {
                tracing::warn!(error = %e, "cannot resolve Redis topology");
                self.dirty = self.channels.values().any(|s| s.node.is_none());
                return;
            }
        };
        let mut moves = Vec::new();
        for (channel, sub) in &self.channels {
            let owner = map.owner(key_slot(shard_channel(channel).as_bytes()));
            let current = sub.node.as_ref().map(|(a, _)| a);
            if owner != current {
                moves.push((channel.clone(), owner.cloned()));
            }
        }
        self.dirty = false;
        for (channel, owner) in moves {
            if let Some(sub) = self.channels.get_mut(&channel)
                && let Some((old, generation)) = sub.node.take()
            {
                sub.confirmed = false;
                if let Some(node) = self.nodes.get(&old).filter(|n| n.generation == generation) {
                    let _ = node.tx.send(NodeCmd::Unsubscribe(shard_channel(&channel)));
                }
            }
            match owner {
                Some(addr) => self.assign(&channel, addr),
                None => self.dirty = true,
            }
        }
    }

    fn assign(&mut self, channel: &str, addr: Addr) {
        let node = match self.nodes.get(&addr) {
            Some(n) if !n.tx.is_closed() => n,
            _ => {
                let Some(events) = self.tx.upgrade() else { return };
                self.next_gen += 1;
                let generation = self.next_gen;
                let (tx, rx) = mpsc::unbounded_channel();
                let conn = NodeTask {
                    addr: addr.clone(),
                    generation,
                    password: self.router.topology().password().map(str::to_string),
                    timeout: self.router.topology().timeout(),
                    ping_every: self.poll,
                    events,
                    sink: self.sink.clone(),
                };
                tokio::spawn(conn.run(rx));
                self.nodes.insert(addr.clone(), NodeConn { generation, tx });
                &self.nodes[&addr]
            }
        };
        let generation = node.generation;
        let again = self.channels.get(channel).is_some_and(|s| s.ever_confirmed);
        let _ = node.tx.send(NodeCmd::Subscribe { shard: shard_channel(channel), again });
        if let Some(sub) = self.channels.get_mut(channel) {
            sub.node = Some((addr, generation));
            sub.confirmed = false;
        }
    }
}

/// One subscribe-only connection to one node.
struct NodeTask {
    addr: Addr,
    generation: u64,
    password: Option<String>,
    timeout: Duration,
    ping_every: Duration,
    events: mpsc::UnboundedSender<Cmd>,
    sink: Arc<dyn MessageSink>,
}

#[derive(Debug, thiserror::Error)]
enum NodeError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Resp(#[from] resp::RespError),
    #[error("timed out")]
    Timeout,
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("no reply to PING")]
    Silent,
}

impl NodeTask {
    async fn run(self, rx: mpsc::UnboundedReceiver<NodeCmd>) {
        if let Err(e) = self.serve(rx).await {
            tracing::warn!(node = %self.addr, error = %e, "subscriber connection lost");
        }
        let _ = self.events.send(Cmd::Down { addr: self.addr.clone(), generation: self.generation });
    }

    async fn serve(&self, mut rx: mpsc::UnboundedReceiver<NodeCmd>) -> Result<(), NodeError> {
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(&*self.addr)).await.map_err(|_| NodeError::Timeout)??;
        stream.set_nodelay(true)?;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut out = BytesMut::new();
        if let Some(password) = &self.password {
            resp::encode(&[b"AUTH", password.as_bytes()], &mut out);
            stream.write_all(&out.split()).await?;
            let reply = tokio::time::timeout(self.timeout, read_one(&mut stream, &mut buf)).await.map_err(|_| NodeError::Timeout)??;
            if let Resp::Error(e) = reply {
                return Err(NodeError::Auth(String::from_utf8_lossy(&e).into_owned()));
            }
        }
        // Replies to SSUBSCRIBE arrive in order; errors (MOVED) carry no channel name, so the
        // oldest pending request is the one refused. Each is kept with its `again` flag.
        let mut pending: VecDeque<(String, bool)> = VecDeque::new();
        let mut unsubscribing: HashSet<String> = HashSet::new();
        let mut ping = tokio::time::interval(self.ping_every);
        let mut last_read = tokio::time::Instant::now();
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return Ok(()) };
                    match cmd {
                        NodeCmd::Subscribe { shard, again } => {
                            unsubscribing.remove(&shard);
                            resp::encode(&[b"SSUBSCRIBE", shard.as_bytes()], &mut out);
                            pending.push_back((shard, again));
                        }
                        NodeCmd::Unsubscribe(shard) => {
                            resp::encode(&[b"SUNSUBSCRIBE", shard.as_bytes()], &mut out);
                            unsubscribing.insert(shard);
                        }
                    }
                    stream.write_all(&out.split()).await?;
                }
                n = stream.read_buf(&mut buf) => {
                    if n? == 0 {
                        return Err(NodeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                    }
                    last_read = tokio::time::Instant::now();
                    while let Some(frame) = resp::parse(&mut buf)? {
                        self.dispatch(frame, &mut pending, &mut unsubscribing);
                    }
                }
                _ = ping.tick() => {
                    if last_read.elapsed() > self.ping_every * 3 {
                        return Err(NodeError::Silent);
                    }
                    resp::encode(&[b"PING"], &mut out);
                    stream.write_all(&out.split()).await?;
                }
            }
        }
    }

    fn dispatch(&self, frame: Resp, pending: &mut VecDeque<(String, bool)>, unsubscribing: &mut HashSet<String>) {
        match frame {
            Resp::Array(Some(items)) => {
                let kind = items.first().and_then(Resp::as_bytes).map(|b| b.as_ref());
                let shard = items.get(1).and_then(Resp::as_bytes);
                match (kind, shard) {
                    (Some(b"smessage"), Some(shard)) => {
                        if let (Some(channel), Some(Resp::Bulk(Some(payload)))) = (client_channel(shard), items.get(2)) {
                            self.sink.on_message(channel, payload.clone());
                        }
                    }
                    (Some(b"ssubscribe"), Some(shard)) => {
                        let shard = String::from_utf8_lossy(shard).into_owned();
                        let again = pending.iter().position(|(p, _)| *p == shard).and_then(|i| pending.remove(i)).is_some_and(|(_, a)| a);
                        if let Some(channel) = client_channel(shard.as_bytes()) {
                            // Here, before the next frame: a publication that follows the
                            // confirmation in this connection must find the backfill begun,
                            // or its delivery would move the hub's position past everything
                            // published while the channel was not subscribed (a Sentinel
                            // failover lost 58 messages for one sidecar that way).
                            if again {
                                self.sink.on_resubscribed(channel);
                            }
                            let _ = self.events.send(Cmd::Confirmed {
                                addr: self.addr.clone(),
                                generation: self.generation,
                                channel: channel.to_string(),
                            });
                        }
                    }
                    (Some(b"sunsubscribe"), Some(shard)) => {
                        let shard = String::from_utf8_lossy(shard).into_owned();
                        // Ours: expected. Not ours: the server dropped us (slot moved away).
                        if !unsubscribing.remove(&shard)
                            && let Some(channel) = client_channel(shard.as_bytes())
                        {
                            let _ = self.events.send(Cmd::Lost {
                                addr: self.addr.clone(),
                                generation: self.generation,
                                channel: channel.to_string(),
                            });
                        }
                    }
                    _ => {} // pong
                }
            }
            Resp::Error(e) => {
                let message = String::from_utf8_lossy(&e);
                if let Some((shard, _)) = pending.pop_front() {
                    tracing::info!(node = %self.addr, %shard, error = %message, "SSUBSCRIBE refused; re-resolving");
                    if let Some(channel) = client_channel(shard.as_bytes()) {
                        let _ = self.events.send(Cmd::Lost {
                            addr: self.addr.clone(),
                            generation: self.generation,
                            channel: channel.to_string(),
                        });
                    }
                } else {
                    tracing::warn!(node = %self.addr, error = %message, "unexpected error on subscriber connection");
                }
            }
            _ => {}
        }
    }
}

/// Reads exactly one reply (used for AUTH before any subscription exists).
async fn read_one(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Resp, NodeError> {
    loop {
        if let Some(v) = resp::parse(buf)? {
            return Ok(v);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(NodeError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_channel_names_round_trip() {
        let shard = shard_channel("room:1");
        assert_eq!(shard, "sf:{room:1}");
        assert_eq!(client_channel(shard.as_bytes()), Some("room:1"));
        assert_eq!(client_channel(b"other"), None);
        assert_eq!(key_slot(shard.as_bytes()), key_slot(b"sf:{room:1}:log"));
    }
}
