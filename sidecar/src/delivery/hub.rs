//! Local fan-out: one Redis subscription per channel per pod, however many local
//! subscribers it has.
//!
//! The hub keeps, per channel, the local members and the last offset delivered. Live
//! publications arrive from the [`Subscriber`]; each is delivered once, in offset order:
//! anything at or below the last offset is a duplicate (a backfill overlapping live
//! traffic) and is dropped. A member that is still recovering history (see `recovery`)
//! is in `Buffering` mode: its live messages wait until its history has been sent.
//! After the subscriber re-subscribes a channel (failover, migration) the hub buffers live
//! traffic, backfills from the stream since its last offset, then flushes the buffer.
//!
//! Fan-out never waits on a client: a full send queue marks the client slow and it is
//! disconnected with a reconnect hint (it recovers with `since` elsewhere).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::backend::subscriber::{MessageSink, Subscriber};
use crate::clock::unix_ms;
use crate::delivery::offset::{Gap, Offset, Position};
use crate::delivery::send_queue::{Refused, SendQueue, Taken};
use crate::edge::protocol;
use crate::metrics::Metrics;
use crate::store::channels::{ChannelStore, HistoryPage};

pub type ConnId = u64;

/// Out-of-band signals to a connection's writer: two reasons to end it, which differ (a
/// slow client's blocked write is abandoned, a drained client's queue is flushed first), a
/// ping to send, and one wake-up for all: the writer reads the flags when woken.
#[derive(Default)]
pub struct ConnSignals {
    /// Its send queue overflowed: disconnect with a reconnect hint.
    pub slow: AtomicBool,
    /// The pod is draining: flush, send `reconnect`, close (and keep presence: it resumes).
    pub drain: AtomicBool,
    /// A keepalive ping is due (`edge/keepalive.rs`).
    pub ping: AtomicBool,
    /// Notified after any flag is set.
    pub wake: Notify,
    /// Frames put in the send queue (counted before they enter it) and frames flushed to
    /// the socket (by a direct write or by the writer). Equal under the hub's lock means
    /// every frame queued for the connection so far is written: what session checkpoints
    /// rely on.
    pub queued: AtomicU64,
    pub written: AtomicU64,
    /// The client was told to reconnect, with the checkpoint written just before: that is
    /// where it resumes. What this connection writes afterwards (it still answers until the
    /// client switches) must not move the stored positions, or a client that stopped
    /// reading at the hint would resume past messages it never read.
    pub handed_off: AtomicBool,
}

impl ConnSignals {
    /// Everything queued so far has been written to the socket.
    pub fn caught_up(&self) -> bool {
        self.queued.load(Ordering::Acquire) == self.written.load(Ordering::Acquire) && !self.slow.load(Ordering::Relaxed)
    }
}

/// The sending side of one connection, as the hub sees it.
#[derive(Clone)]
pub struct Outbox {
    pub id: ConnId,
    pub queue: Arc<SendQueue>,
    pub signals: Arc<ConnSignals>,
}

impl Outbox {
    /// Queues, waiting for space (replies and history: never dropped). False when the
    /// connection is gone.
    ///
    /// Every attempt counts in `queued`, also one that fails: a frame the connection could
    /// not take (its writer has ended, or its queue is full) was never written, so its
    /// checkpoints must stop advancing for good.
    pub async fn send(&self, frame: Utf8Bytes) -> bool {
        self.signals.queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.send(frame).await {
            Some(taken) => {
                self.count(taken);
                true
            }
            None => false,
        }
    }

    /// A frame written straight away (see `send_queue`) counts as written now; a queued
    /// one when the writer flushes it.
    fn count(&self, taken: Taken) {
        if taken == Taken::Written {
            self.signals.written.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Queues without waiting; a full queue marks the connection slow. Counted like `send`.
    pub fn offer(&self, frame: Utf8Bytes) -> bool {
        self.signals.queued.fetch_add(1, Ordering::AcqRel);
        match self.queue.offer(frame) {
            Ok(taken) => {
                self.count(taken);
                true
            }
            Err(Refused::Full) => {
                if !self.signals.slow.swap(true, Ordering::AcqRel) {
                    self.signals.wake.notify_one();
                }
                false
            }
            Err(Refused::Closed) => false,
        }
    }
}

/// A live publication, parsed once and shared by every recipient.
struct Delivery {
    offset: Offset,
    epoch: Arc<str>,
    frame: Utf8Bytes,
}

/// Live messages held for a member whose history is still being sent.
const MAX_BUFFERED: usize = 10_000;

enum Mode {
    Live,
    Buffering { items: Vec<Arc<Delivery>>, overflowed: bool },
}

struct Member {
    outbox: Outbox,
    mode: Mode,
    /// Where its own history read left it when that was ahead of the hub's position (a
    /// stream read can see publications whose PUB/SUB copy has not reached this pod yet):
    /// live deliveries up to here are skipped, or the member would get them twice.
    /// Cleared by the first delivery past it.
    sent_up_to: Option<(Arc<str>, Offset)>,
}

#[derive(Default)]
struct ChannelState {
    members: HashMap<ConnId, Member>,
    /// The last publication delivered (epoch, offset).
    last: Option<(Arc<str>, Offset)>,
    /// `Some` while a backfill after re-subscription runs: live messages wait here.
    backfill: Option<Vec<Arc<Delivery>>>,
    /// Live traffic was interrupted again while a backfill ran: copies lost then may be
    /// newer than the page it read, so it reads once more before finishing.
    backfill_again: bool,
}

impl ChannelState {
    fn is_duplicate(&self, epoch: &str, offset: Offset) -> bool {
        matches!(&self.last, Some((e, last)) if **e == *epoch && offset <= *last)
    }

    /// Delivers in order to every member; buffering members keep it for later.
    fn deliver(&mut self, d: &Arc<Delivery>, metrics: &Metrics) {
        self.last = Some((d.epoch.clone(), d.offset));
        for m in self.members.values_mut() {
            match &mut m.mode {
                Mode::Live => {
                    if let Some((epoch, up_to)) = &m.sent_up_to {
                        if **epoch == *d.epoch && d.offset <= *up_to {
                            continue;
                        }
                        m.sent_up_to = None;
                    }
                    if m.outbox.offer(d.frame.clone()) {
                        metrics.messages_out.inc();
                    }
                }
                Mode::Buffering { items, overflowed } => {
                    if items.len() < MAX_BUFFERED {
                        items.push(d.clone());
                    } else {
                        *overflowed = true;
                    }
                }
            }
        }
    }
}

impl ChannelState {
    /// A live publication from Redis: dropped when already delivered, held while a
    /// backfill runs, delivered otherwise.
    fn on_live(&mut self, d: Arc<Delivery>, metrics: &Metrics) {
        if self.is_duplicate(&d.epoch, d.offset) {
            return;
        }
        match &mut self.backfill {
            Some(buffer) => buffer.push(d),
            None => self.deliver(&d, metrics),
        }
    }

    /// Where a backfill after re-subscription starts: the last publication delivered or,
    /// before the first one, the lowest position a live member was sent by its own
    /// history read.
    fn floor(&self) -> Option<(Arc<str>, Offset)> {
        self.last.clone().or_else(|| self.members.values().filter_map(|m| m.sent_up_to.clone()).min_by(|(_, a), (_, b)| a.cmp(b)))
    }

    /// Live traffic was interrupted (the subscriber re-subscribed): hold live messages until
    /// the stream has been read since the floor. False when a backfill already runs.
    fn begin_backfill(&mut self) -> bool {
        if self.backfill.is_some() {
            self.backfill_again = true;
            return false;
        }
        self.backfill = Some(Vec::new());
        true
    }

    /// Where the running backfill reads next, or None when there is nothing to read from
    /// (the backfill is then finished here). Before the hub has delivered anything it does
    /// not know where a member still buffering read history up to, so the backfill may
    /// start past it: such a member is sent back to read its own history again, as after a
    /// buffer overflow. (Once the hub has delivered, every buffering member holds every
    /// copy up to its position.)
    fn backfill_from(&mut self, metrics: &Metrics) -> Option<(Arc<str>, Offset)> {
        let floor = self.floor();
        if self.last.is_none() {
            for m in self.members.values_mut() {
                if let Mode::Buffering { overflowed, .. } = &mut m.mode {
                    *overflowed = true;
                }
            }
        }
        if floor.is_none() {
            self.finish_backfill(metrics);
        }
        floor
    }

    /// Applies one page a backfill read after `from`: a recreated stream is announced as a
    /// gap (and reading restarts at its beginning), new entries are delivered. True when
    /// the page was the last: the backfill is then finished here, under the same lock, so
    /// an interruption reported from now on starts a backfill of its own instead of
    /// marking one that is about to end.
    fn apply_backfill(&mut self, channel: &str, from: (&Arc<str>, Offset), page: &HistoryPage, metrics: &Metrics) -> bool {
        let (epoch, after) = from;
        if *page.epoch != **epoch {
            let gap = Gap { from: after, to: page.first.unwrap_or(page.last.next()), missed: None };
            let frame = Utf8Bytes::from(protocol::gap_frame(channel, &page.epoch, &gap));
            for m in self.members.values() {
                m.outbox.offer(frame.clone());
            }
            self.last = Some((Arc::from(page.epoch.as_str()), Offset::ZERO));
            return false;
        }
        for (offset, data) in &page.entries {
            if self.is_duplicate(epoch, *offset) {
                continue;
            }
            let frame = Utf8Bytes::from(protocol::message_frame(channel, *offset, epoch, data));
            self.deliver(&Arc::new(Delivery { offset: *offset, epoch: epoch.clone(), frame }), metrics);
        }
        let done = page.entries.len() < BACKFILL_PAGE as usize && !std::mem::take(&mut self.backfill_again);
        if done {
            self.finish_backfill(metrics);
        }
        done
    }

    /// The backfill is over: what arrived live meanwhile is delivered, in order.
    fn finish_backfill(&mut self, metrics: &Metrics) {
        self.backfill_again = false;
        for d in self.backfill.take().unwrap_or_default() {
            if !self.is_duplicate(&d.epoch, d.offset) {
                self.deliver(&d, metrics);
            }
        }
    }

    /// See [`Hub::go_live`].
    fn go_live(&mut self, id: ConnId, client: &Position, stream_last: Offset, metrics: &Metrics) -> GoLive {
        // The hub's position moves only with what it delivers, so that every member still
        // buffering receives every later publication. The one exception: a member alone on
        // the channel seeds it from its own history read, since no one else can be behind
        // (a member joining later reads history after this point). Seeding it with others
        // present dropped a channel's first publication for a member whose history read
        // came before it while another member's read already saw it (issue 17).
        if self.last.is_none() && self.members.len() == 1 {
            self.last = Some((Arc::from(client.epoch.as_str()), stream_last.max(client.offset)));
        }
        let ahead = !self.is_duplicate(&client.epoch, client.offset);
        let Some(member) = self.members.get_mut(&id) else { return GoLive::Gone };
        let items = match &mut member.mode {
            Mode::Live => return GoLive::Live,
            Mode::Buffering { overflowed: true, items } => {
                items.clear();
                if let Mode::Buffering { overflowed, .. } = &mut member.mode {
                    *overflowed = false;
                }
                return GoLive::Overflowed;
            }
            Mode::Buffering { items, .. } => std::mem::take(items),
        };
        for d in items {
            let old = *d.epoch == *client.epoch && d.offset <= client.offset;
            if !old && member.outbox.offer(d.frame.clone()) {
                metrics.messages_out.inc();
            }
        }
        // Buffered items past the client's offset were delivered, so they moved `last`
        // too: only a history read can leave the member ahead of the hub.
        member.sent_up_to = ahead.then(|| (Arc::from(client.epoch.as_str()), client.offset));
        member.mode = Mode::Live;
        GoLive::Live
    }
}

/// The outcome of switching a member to live delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum GoLive {
    Live,
    /// Its buffer overflowed while history was sent: read history again from `after`.
    Overflowed,
    /// The member left meanwhile.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("Redis did not confirm the subscription in time")]
    SubscribeTimeout,
    #[error("the Redis subscriber has stopped")]
    Stopped,
}

const SHARDS: usize = 16;
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKFILL_PAGE: u32 = 500;
const BACKFILL_ATTEMPTS: u32 = 120;

pub struct Hub {
    shards: Vec<Mutex<HashMap<String, ChannelState>>>,
    subscriber: OnceLock<Subscriber>,
    store: Arc<ChannelStore>,
    metrics: Arc<Metrics>,
    /// Weak self, for spawning backfills from `&self` callbacks.
    this: std::sync::Weak<Hub>,
}

/// Splits `m <offset> <epoch>\n<frame>` or `x\n<frame>`.
fn parse_payload(payload: &Bytes) -> Option<(Option<(Offset, &str)>, Bytes)> {
    let nl = payload.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&payload[..nl]).ok()?;
    let frame = payload.slice(nl + 1..);
    let mut parts = header.split(' ');
    match parts.next()? {
        "m" => {
            let offset = parts.next()?.parse().ok()?;
            let epoch = parts.next()?;
            Some((Some((offset, epoch)), frame))
        }
        "x" => Some((None, frame)),
        _ => None,
    }
}

impl Hub {
    pub fn new(store: Arc<ChannelStore>, metrics: Arc<Metrics>) -> Arc<Hub> {
        Arc::new_cyclic(|this| Hub {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            subscriber: OnceLock::new(),
            store,
            metrics,
            this: this.clone(),
        })
    }

    /// Wires the subscriber in (it needs the hub as its sink, hence after construction).
    pub fn attach(&self, subscriber: Subscriber) {
        let _ = self.subscriber.set(subscriber);
    }

    fn shard(&self, channel: &str) -> &Mutex<HashMap<String, ChannelState>> {
        let h = channel.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    fn with_channel<R>(&self, channel: &str, f: impl FnOnce(&mut HashMap<String, ChannelState>) -> R) -> R {
        let mut guard = match self.shard(channel).lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Adds a member in buffering mode and makes sure Redis delivers the channel to this
    /// pod. When this returns, every later publication reaches the member's buffer.
    pub async fn join(&self, channel: &str, outbox: Outbox) -> Result<(), HubError> {
        self.with_channel(channel, |map| {
            let state = map.entry(channel.to_string()).or_insert_with(|| {
                self.metrics.channels.inc();
                ChannelState::default()
            });
            state
                .members
                .insert(outbox.id, Member { outbox, mode: Mode::Buffering { items: Vec::new(), overflowed: false }, sent_up_to: None });
        });
        let subscriber = self.subscriber.get().ok_or(HubError::Stopped)?;
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscriber.subscribe(channel)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(HubError::Stopped),
            Err(_) => Err(HubError::SubscribeTimeout),
        }
    }

    /// Switches a member to live delivery once its history up to `client` was sent.
    /// `stream_last` is the channel's last offset as read with that history; it seeds the
    /// hub's own position the first time the channel is seen.
    pub fn go_live(&self, channel: &str, id: ConnId, client: &Position, stream_last: Offset) -> GoLive {
        self.with_channel(channel, |map| match map.get_mut(channel) {
            Some(state) => state.go_live(id, client, stream_last, &self.metrics),
            None => GoLive::Gone,
        })
    }

    /// The position a connection has certainly been sent on a channel: the last publication
    /// delivered, provided the member is live and its writer has flushed everything queued
    /// (checked under the channel's lock, so no delivery can slip in between). `None` when
    /// that cannot be vouched for now; session checkpoints then keep their older position.
    pub fn written_position(&self, channel: &str, id: ConnId, signals: &ConnSignals) -> Option<Position> {
        self.with_channel(channel, |map| {
            let state = map.get(channel)?;
            let member = state.members.get(&id)?;
            if !matches!(member.mode, Mode::Live) || !signals.caught_up() {
                return None;
            }
            // A member whose own history read is ahead of the hub has been sent that far.
            let (epoch, offset) = member.sent_up_to.as_ref().or(state.last.as_ref())?;
            Some(Position { offset: *offset, epoch: epoch.to_string() })
        })
    }

    /// Removes a member; the last one out unsubscribes the pod from Redis.
    pub fn leave(&self, channel: &str, id: ConnId) {
        self.with_channel(channel, |map| {
            let Some(state) = map.get_mut(channel) else { return };
            state.members.remove(&id);
            if state.members.is_empty() {
                map.remove(channel);
                self.metrics.channels.dec();
                // Sent under the lock so a concurrent join's subscribe is ordered after it.
                if let Some(s) = self.subscriber.get() {
                    s.unsubscribe(channel);
                }
            }
        });
    }

    /// Sends a frame to every live member of a channel (transient events).
    fn broadcast(&self, channel: &str, frame: &Utf8Bytes) {
        self.with_channel(channel, |map| {
            if let Some(state) = map.get(channel) {
                for m in state.members.values() {
                    if matches!(m.mode, Mode::Live) && m.outbox.offer(frame.clone()) {
                        self.metrics.messages_out.inc();
                    }
                }
            }
        });
    }

    /// Backfills a channel after re-subscription: history since the hub's last offset,
    /// then whatever arrived live meanwhile.
    async fn backfill(self: Arc<Hub>, channel: String) {
        let mut attempts = 0;
        loop {
            let Some((epoch, after)) =
                self.with_channel(&channel, |map| map.get_mut(&channel).and_then(|s| s.backfill_from(&self.metrics)))
            else {
                return;
            };
            let page = match self.store.read(&channel, after, BACKFILL_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    attempts += 1;
                    if attempts >= BACKFILL_ATTEMPTS {
                        tracing::error!(%channel, error = %e, "backfill abandoned");
                        self.abandon_backfill(&channel);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            let done = self.with_channel(&channel, |map| match map.get_mut(&channel) {
                Some(state) => state.apply_backfill(&channel, (&epoch, after), &page, &self.metrics),
                None => true,
            });
            if done {
                return;
            }
        }
    }

    fn abandon_backfill(&self, channel: &str) {
        self.with_channel(channel, |map| {
            if let Some(state) = map.get_mut(channel) {
                state.finish_backfill(&self.metrics);
            }
        });
    }
}

impl MessageSink for Hub {
    fn on_message(&self, channel: &str, payload: Bytes) {
        let Some((header, frame)) = parse_payload(&payload) else {
            tracing::warn!(%channel, "ignoring a malformed shard-channel payload");
            return;
        };
        let Ok(frame) = Utf8Bytes::try_from(frame) else { return };
        let Some((offset, epoch)) = header else {
            self.broadcast(channel, &frame);
            return;
        };
        self.metrics.publish_to_deliver.observe(unix_ms().saturating_sub(offset.ms) as f64 / 1000.0);
        self.with_channel(channel, |map| {
            if let Some(state) = map.get_mut(channel) {
                state.on_live(Arc::new(Delivery { offset, epoch: Arc::from(epoch), frame }), &self.metrics);
            }
        });
    }

    fn on_resubscribed(&self, channel: &str) {
        self.metrics.resubscribes.inc();
        let start = self.with_channel(channel, |map| map.get_mut(channel).is_some_and(ChannelState::begin_backfill));
        if start && let Some(hub) = self.this.upgrade() {
            tokio::spawn(hub.backfill(channel.to_string()));
        }
    }

    fn on_node_down(&self, _addr: &str) {
        self.metrics.redis_reconnects.inc();
    }
}

#[cfg(test)]
#[path = "hub_model_tests.rs"]
mod model_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn member(state: &mut ChannelState, id: ConnId) -> Arc<SendQueue> {
        let queue = Arc::new(SendQueue::new(16, false));
        let outbox = Outbox { id, queue: queue.clone(), signals: Arc::default() };
        state.members.insert(id, Member { outbox, mode: Mode::Buffering { items: Vec::new(), overflowed: false }, sent_up_to: None });
        queue
    }

    fn publication(offset: u64) -> Arc<Delivery> {
        let offset = Offset { ms: 1, seq: offset };
        Arc::new(Delivery { offset, epoch: Arc::from("e"), frame: Utf8Bytes::from(format!("m{}", offset.seq)) })
    }

    fn received(queue: &mut Arc<SendQueue>) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv()).map(|f| f.to_string()).collect()
    }

    #[test]
    fn a_member_whose_history_read_is_ahead_of_the_hub_gets_each_publication_once() {
        let metrics = Metrics::new();
        let mut state = ChannelState::default();
        let mut first = member(&mut state, 1);
        let at = |seq| Position { offset: Offset { ms: 1, seq }, epoch: "e".into() };
        assert_eq!(state.go_live(1, &at(3), Offset { ms: 1, seq: 3 }, &metrics), GoLive::Live);
        // The second member's stream read saw 4 and 5 before their PUB/SUB copies came.
        let mut second = member(&mut state, 2);
        assert_eq!(state.go_live(2, &at(5), Offset { ms: 1, seq: 5 }, &metrics), GoLive::Live);
        for seq in 4..=6 {
            state.deliver(&publication(seq), &metrics);
        }
        assert_eq!(received(&mut first), ["m4", "m5", "m6"]);
        assert_eq!(received(&mut second), ["m6"], "4 and 5 came with its history already");
        assert!(state.members[&2].sent_up_to.is_none(), "the first delivery past it clears the floor");
    }

    #[test]
    fn a_channels_first_publication_reaches_a_member_whose_history_read_came_before_it() {
        let metrics = Metrics::new();
        let mut state = ChannelState::default();
        let at = |seq| Position { offset: Offset { ms: 1, seq }, epoch: "e".into() };
        // Both join an empty channel. The first member's history read already saw
        // publication 1; the second read the stream just before it was published.
        let mut first = member(&mut state, 1);
        let mut second = member(&mut state, 2);
        assert_eq!(state.go_live(1, &at(1), Offset { ms: 1, seq: 1 }, &metrics), GoLive::Live);
        assert_eq!(state.go_live(2, &at(0), Offset { ms: 1, seq: 0 }, &metrics), GoLive::Live);
        // Then publication 1's PUB/SUB copy arrives, and 2 after it.
        state.on_live(publication(1), &metrics);
        state.on_live(publication(2), &metrics);
        assert_eq!(received(&mut first), ["m2"], "1 came with its history");
        assert_eq!(received(&mut second), ["m1", "m2"]);
        // A re-subscription before any delivery would backfill from the lowest live member.
        let mut quiet = ChannelState::default();
        let _a = member(&mut quiet, 1);
        let _b = member(&mut quiet, 2);
        quiet.go_live(1, &at(4), Offset { ms: 1, seq: 4 }, &metrics);
        quiet.go_live(2, &at(3), Offset { ms: 1, seq: 3 }, &metrics);
        assert_eq!(quiet.floor().map(|(_, o)| o.seq), Some(3));
    }

    #[test]
    fn a_member_alone_seeds_the_hub_and_later_copies_of_its_history_are_dropped() {
        let metrics = Metrics::new();
        let mut state = ChannelState::default();
        let at = |seq| Position { offset: Offset { ms: 1, seq }, epoch: "e".into() };
        let mut only = member(&mut state, 1);
        assert_eq!(state.go_live(1, &at(2), Offset { ms: 1, seq: 2 }, &metrics), GoLive::Live);
        state.on_live(publication(2), &metrics);
        state.on_live(publication(3), &metrics);
        assert_eq!(received(&mut only), ["m3"]);
        // One who joins afterwards reads history past 3 itself; nothing is sent twice.
        let mut later = member(&mut state, 2);
        state.on_live(publication(4), &metrics);
        assert_eq!(state.go_live(2, &at(3), Offset { ms: 1, seq: 3 }, &metrics), GoLive::Live);
        assert_eq!(received(&mut later), ["m4"]);
        assert_eq!(received(&mut only), ["m4"]);
    }

    #[test]
    fn parses_shard_payloads() {
        let p = Bytes::from_static(b"m 17-3 abc\n{\"type\":\"message\"}");
        let (header, frame) = parse_payload(&p).expect("valid");
        assert_eq!(header, Some((Offset { ms: 17, seq: 3 }, "abc")));
        assert_eq!(&frame[..], b"{\"type\":\"message\"}");
        let x = Bytes::from_static(b"x\n{}");
        let (header, frame) = parse_payload(&x).expect("valid");
        assert_eq!((header, &frame[..]), (None, &b"{}"[..]));
        assert!(parse_payload(&Bytes::from_static(b"m nope\n{}")).is_none());
        assert!(parse_payload(&Bytes::from_static(b"no newline")).is_none());
    }
}
