//! Server-side sessions: what a client needs to come back on any pod, also after its pod
//! was SIGKILLed.
//!
//! A session is its user, its subscriptions with the position each has certainly been
//! written to the client, and custom state the app sets (`PUT /sessions/{sid}/state`). It
//! lives in Redis as the hash `sf:session:{<sid>}` (`o` owner, `d` the JSON document), with
//! the resume window as its TTL, and is checkpointed as it changes, not only at disconnect:
//!
//! - a task writes every session with changed subscriptions or state at most once per
//!   `SF_SESSION_CHECKPOINT`, one whose only change is its positions at most once per
//!   `SF_SESSION_POSITION_CHECKPOINT` (positions move with every message; writing them
//!   every second was a third of the sidecar's CPU under load), with bounded concurrency,
//!   and refreshes the TTL of unchanged ones at half the window. It looks at one of
//!   `ROUND_SLICES` slices of the sessions (by connection id, [`crate::slices`]) at a
//!   time: each session is still looked at once per interval, and the writes reach Redis,
//!   which the publishes share, evenly instead of in one burst per interval;
//! - a position only advances to what the hub vouches was flushed to the socket
//!   ([`Hub::written_position`]), so a checkpoint is never ahead of the client;
//! - a drained connection writes its final checkpoint before it is told to reconnect, so a
//!   client without offsets resumes exactly where it was;
//! - a connection that resumes a session claims it (sets the owner): a later write from the
//!   connection it replaced (its pod still flushing) is refused and cannot roll it back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Value;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::backend::router::{Router, RouterError};
use crate::backend::script::Script;
use crate::delivery::hub::{ConnId, ConnSignals, Hub};
use crate::delivery::offset::Position;
use crate::metrics::Metrics;
use crate::slices::{Slice, Turns};

/// Writes the document unless another connection owns the session now.
const SAVE: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'o')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Makes ARGV[1] the owner and returns the document (nil when there is none).
const CLAIM: &str = r#"
local doc = redis.call('HGET', KEYS[1], 'd')
redis.call('HSET', KEYS[1], 'o', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return doc
"#;

/// Sessions written concurrently by one checkpoint round.
const SAVE_CONCURRENCY: usize = 64;

/// The checkpoint interval is split into this many rounds, each over its slice of the
/// sessions.
const ROUND_SLICES: u64 = 10;

fn key(session: &str) -> String {
    crate::store::keys::session(session)
}

/// A position as stored and as clients send it: `{"offset": "...", "epoch": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub offset: String,
    pub epoch: String,
}

impl Mark {
    pub fn position(&self) -> Option<Position> {
        Some(Position { offset: self.offset.parse().ok()?, epoch: self.epoch.clone() })
    }
}

impl From<&Position> for Mark {
    fn from(p: &Position) -> Mark {
        Mark { offset: p.offset.to_string(), epoch: p.epoch.clone() }
    }
}

/// The stored session.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionDoc {
    pub user: String,
    /// Each subscription and the position the client was certainly sent.
    pub channels: BTreeMap<String, Mark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<RawValue>>,
}

/// One connection's session, as this pod holds it.
pub struct Session {
    pub id: String,
    pub user: String,
    /// When the connection's token expires (Unix seconds, 0: never): resume tokens issued
    /// for the session do not outlive it. Moves with an in-band refresh.
    pub identity_expires: std::sync::atomic::AtomicU64,
    conn: ConnId,
    signals: Arc<ConnSignals>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, Position>,
    state: Option<Box<RawValue>>,
    /// Counts changes to subscriptions and state; dirty while it differs from
    /// `saved_version`.
    version: u64,
    saved_version: u64,
    /// Counts position moves, separately: they are written on a slower cadence.
    positions_version: u64,
    saved_positions_version: u64,
    saved_at: Option<Instant>,
    /// Another connection claimed the session: this one stops writing it.
    superseded: bool,
}

impl Session {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.inner().channels.contains_key(channel)
    }

    pub fn subscription_count(&self) -> usize {
        self.inner().channels.len()
    }

    pub fn channels(&self) -> Vec<String> {
        self.inner().channels.keys().cloned().collect()
    }

    /// Records a subscription and the position its delivery starts after.
    pub fn subscribed(&self, channel: &str, start: Position) {
        let mut inner = self.inner();
        inner.channels.insert(channel.to_string(), start);
        inner.version += 1;
    }

    /// Forgets a subscription; false when there was none.
    pub fn unsubscribed(&self, channel: &str) -> bool {
        let mut inner = self.inner();
        let had = inner.channels.remove(channel).is_some();
        if had {
            inner.version += 1;
        }
        had
    }

    pub fn state(&self) -> Option<Box<RawValue>> {
        self.inner().state.clone()
    }

    fn set_state(&self, state: Box<RawValue>) {
        let mut inner = self.inner();
        inner.state = Some(state);
        inner.version += 1;
    }

    /// Moves each position forward to what the hub vouches was written to the client.
    fn advance(&self, hub: &Hub) {
        if self.signals.handed_off.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let channels = self.channels();
        let moved: Vec<(String, Position)> =
            channels.into_iter().filter_map(|ch| hub.written_position(&ch, self.conn, &self.signals).map(|p| (ch, p))).collect();
        let mut inner = self.inner();
        let mut changed = false;
        for (ch, p) in moved {
            if let Some(cur) = inner.channels.get_mut(&ch)
                && (cur.epoch != p.epoch || cur.offset < p.offset)
            {
                *cur = p;
                changed = true;
            }
        }
        if changed {
            inner.positions_version += 1;
        }
    }

    /// The document to write and its versions, when a write is due: subscriptions or state
    /// changed, positions moved and the last write is `positions_after` old, or the TTL
    /// needs refreshing.
    fn due(&self, refresh_after: Duration, positions_after: Duration) -> Option<(String, Versions)> {
        let inner = self.inner();
        let age = inner.saved_at.map(|t| t.elapsed());
        let stale = age.is_none_or(|a| a >= refresh_after);
        let positions_due = inner.positions_version != inner.saved_positions_version && age.is_none_or(|a| a >= positions_after);
        let nothing_to_restore = inner.saved_at.is_none() && inner.channels.is_empty() && inner.state.is_none();
        if inner.superseded || nothing_to_restore || (inner.version == inner.saved_version && !positions_due && !stale) {
            return None;
        }
        let doc = SessionDoc {
            user: self.user.clone(),
            channels: inner.channels.iter().map(|(c, p)| (c.clone(), Mark::from(p))).collect(),
            state: inner.state.clone(),
        };
        let versions = Versions { changes: inner.version, positions: inner.positions_version };
        serde_json::to_string(&doc).ok().map(|d| (d, versions))
    }

    /// These versions are stored (a change made while the write was in flight keeps the
    /// session dirty for the next round); not accepted: another connection owns it now.
    fn saved(&self, versions: Versions, accepted: bool) {
        let mut inner = self.inner();
        if !accepted {
            inner.superseded = true;
            return;
        }
        inner.saved_at = Some(Instant::now());
        inner.saved_version = inner.saved_version.max(versions.changes);
        inner.saved_positions_version = inner.saved_positions_version.max(versions.positions);
    }
}

/// What a written document contained, so changes made during the write stay dirty.
#[derive(Debug, Clone, Copy)]
struct Versions {
    changes: u64,
    positions: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("Redis: {0}")]
    Redis(#[from] RouterError),
    #[error("the stored session is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("session {0} is not connected to this pod")]
    NotHere(String),
    #[error("the session state is {0} bytes; the limit is {1} (SF_SESSION_STATE_MAX)")]
    TooLarge(usize, usize),
    #[error("another connection has taken the session over")]
    Superseded,
}

/// How sessions are kept.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// The resume window: the TTL of a stored session.
    pub ttl: Duration,
    /// Checkpoint interval for changed subscriptions and state.
    pub interval: Duration,
    /// Checkpoint interval for sessions whose only change is their positions.
    pub position_interval: Duration,
    /// Largest custom state, bytes.
    pub state_max: usize,
}

/// This pod's sessions and their checkpoints.
pub struct Sessions {
    router: Arc<Router>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    /// The resume window: the TTL of a stored session.
    ttl: Duration,
    interval: Duration,
    position_interval: Duration,
    state_max: usize,
    /// Unique per process, so owners from a restarted pod never match old ones.
    boot: String,
    live: Mutex<HashMap<String, Arc<Session>>>,
    /// The router's dropped-connection count the last round saw: when it moved, a node may
    /// have come back empty (restarted without persistence), so every session is written
    /// again.
    dropped_seen: std::sync::atomic::AtomicU64,
    save: Script,
    claim: Script,
}

/// What the caller learns when opening a session.
pub struct Opened {
    pub session: Arc<Session>,
    /// The stored session, when this connection resumed one that has a document.
    pub restored: Option<SessionDoc>,
}

impl Sessions {
    pub fn new(router: Arc<Router>, hub: Arc<Hub>, metrics: Arc<Metrics>, settings: SessionSettings, node: &str) -> Arc<Sessions> {
        let SessionSettings { ttl, interval, position_interval, state_max } = settings;
        Arc::new(Sessions {
            router,
            hub,
            metrics,
            ttl,
            interval,
            position_interval,
            state_max,
            boot: format!("{node}/{:016x}", rand::random::<u64>()),
            live: Mutex::new(HashMap::new()),
            dropped_seen: Default::default(),
            save: Script::new(SAVE),
            claim: Script::new(CLAIM),
        })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self, conn: ConnId) -> String {
        format!("{}/{conn}", self.boot)
    }

    fn ttl_ms(&self) -> String {
        self.ttl.as_millis().to_string()
    }

    /// Starts holding a session for a connection. A resumed session is claimed in Redis
    /// (later writes of its previous connection are refused) and its document returned;
    /// a document of another user is ignored. A Redis failure is logged and the session
    /// starts empty: the client still resumes from the offsets it reports.
    pub async fn open(&self, id: String, user: &str, conn: ConnId, signals: Arc<ConnSignals>, resumed: bool) -> Opened {
        let mut restored = None;
        if resumed {
            match self.load_claiming(&id, conn).await {
                Ok(Some(doc)) if doc.user == user => restored = Some(doc),
                Ok(Some(_)) => tracing::warn!(session = %id, "stored session belongs to another user; ignored"),
                Ok(None) => {}
                Err(e) => tracing::warn!(session = %id, error = %e, "could not read the stored session"),
            }
        }
        let inner = Inner { state: restored.as_ref().and_then(|d| d.state.clone()), version: 1, ..Inner::default() };
        let session = Arc::new(Session {
            id: id.clone(),
            user: user.to_string(),
            identity_expires: Default::default(),
            conn,
            signals,
            inner: Mutex::new(inner),
        });
        if let Some(old) = self.live().insert(id, session.clone()) {
            // The same session reconnected to this pod before its old connection ended.
            old.inner().superseded = true;
        }
        Opened { session, restored }
    }

    async fn load_claiming(&self, id: &str, conn: ConnId) -> Result<Option<SessionDoc>, SessionError> {
        let (k, owner, ttl) = (key(id), self.owner(conn), self.ttl_ms());
        let reply = self.claim.run(&self.router, &[k.as_str()], &[owner.as_bytes(), ttl.as_bytes()], true, None).await?;
        match reply.first() {
            Some(Value::BulkString(b)) => Ok(Some(serde_json::from_slice(b)?)),
            _ => Ok(None),
        }
    }

    /// The stored session (read-only).
    pub async fn load(&self, id: &str) -> Result<Option<SessionDoc>, SessionError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(key(id)).arg("d");
        let slot = crate::backend::slot::key_slot(key(id).as_bytes());
        match self.router.query(slot, &pipe, true).await?.first() {
            Some(Value::BulkString(b)) => Ok(Some(serde_json::from_slice(b)?)),
            _ => Ok(None),
        }
    }

    /// The session held by a connection of this pod.
    pub fn local(&self, id: &str) -> Option<Arc<Session>> {
        self.live().get(id).cloned()
    }

    /// Writes a session now if a write is due; `Ok(false)` when another connection owns it.
    /// Positions are written when they moved and the last write is `positions_after` old.
    async fn write(&self, session: &Session, refresh_after: Duration, positions_after: Duration) -> Result<bool, SessionError> {
        let Some((doc, versions)) = session.due(refresh_after, positions_after) else { return Ok(true) };
        let (k, owner, ttl) = (key(&session.id), self.owner(session.conn), self.ttl_ms());
        let reply = self.save.run(&self.router, &[k.as_str()], &[owner.as_bytes(), doc.as_bytes(), ttl.as_bytes()], true, None).await?;
        let accepted = matches!(reply.first(), Some(Value::Int(1)));
        session.saved(versions, accepted);
        self.metrics.session_checkpoints.inc();
        Ok(accepted)
    }

    /// Sets the app's custom state and writes it through before answering.
    pub async fn set_state(&self, id: &str, state: Box<RawValue>) -> Result<(), SessionError> {
        if state.get().len() > self.state_max {
            return Err(SessionError::TooLarge(state.get().len(), self.state_max));
        }
        let session = self.local(id).ok_or_else(|| SessionError::NotHere(id.to_string()))?;
        session.set_state(state);
        if self.write(&session, Duration::ZERO, Duration::ZERO).await? { Ok(()) } else { Err(SessionError::Superseded) }
    }

    /// The final checkpoint of a connection that is ending; it stops being held here.
    /// Bounded in time by the caller.
    pub async fn close(&self, session: &Arc<Session>) {
        self.checkpoint(session).await;
        let mut live = self.live();
        if live.get(&session.id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            live.remove(&session.id);
        }
    }

    /// Writes the final checkpoint while the connection is still held (a drain writes it
    /// before the client is told to reconnect, so the next pod reads it).
    pub async fn checkpoint(&self, session: &Session) {
        session.advance(&self.hub);
        if let Err(e) = self.write(session, self.ttl / 2, Duration::ZERO).await {
            tracing::debug!(session = %session.id, error = %e, "session checkpoint failed");
        }
    }

    /// One checkpoint round over the sessions of `slice`: advance their positions, write
    /// what is due. After a Redis connection dropped, every session (of every slice) is
    /// due: a node that restarted empty lost the documents it held, and a resume must not
    /// find them missing until the next change.
    async fn round(&self, slice: Slice) {
        let dropped = self.router.dropped_connections();
        if self.dropped_seen.swap(dropped, std::sync::atomic::Ordering::Relaxed) != dropped {
            for s in self.live().values() {
                s.inner().version += 1;
            }
        }
        let sessions: Vec<Arc<Session>> = self.live().values().filter(|s| slice.holds(s.conn)).cloned().collect();
        for s in &sessions {
            s.advance(&self.hub);
        }
        let refresh_after = self.ttl / 2;
        futures_util::stream::iter(sessions)
            .map(|s| async move {
                if let Err(e) = self.write(&s, refresh_after, self.position_interval).await {
                    tracing::debug!(session = %s.id, error = %e, "session checkpoint failed; retried next round");
                }
            })
            .buffer_unordered(SAVE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    /// Checkpoints forever, one slice's round per `interval / ROUND_SLICES` (a slow round
    /// delays the next).
    pub async fn checkpoint_forever(self: Arc<Self>) {
        let mut turns = Turns::new(self.interval, ROUND_SLICES);
        loop {
            let slice = turns.next().await;
            self.round(slice).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with_channel() -> Session {
        let mut inner = Inner { version: 1, ..Inner::default() };
        inner.channels.insert("c".into(), Mark { offset: "1-1".into(), epoch: "e".into() }.position().expect("valid"));
        Session {
            id: "s".into(),
            user: "u".into(),
            identity_expires: Default::default(),
            conn: 1,
            signals: Arc::default(),
            inner: Mutex::new(inner),
        }
    }

    #[test]
    fn moved_positions_wait_for_their_own_interval_but_changes_do_not() {
        let (refresh, positions) = (Duration::from_secs(150), Duration::from_secs(10));
        let s = session_with_channel();
        let (_, v) = s.due(refresh, positions).expect("a new session with a subscription is due");
        s.saved(v, true);
        assert!(s.due(refresh, positions).is_none(), "nothing changed");
        s.inner().positions_version += 1;
        assert!(s.due(refresh, positions).is_none(), "positions moved, but were written less than 10 s ago");
        assert!(s.due(refresh, Duration::ZERO).is_some(), "a drain's final checkpoint writes them at once");
        s.unsubscribed("c");
        let (doc, v) = s.due(refresh, positions).expect("a subscription change is due at once");
        assert_eq!(doc, r#"{"user":"u","channels":{}}"#);
        s.saved(v, true);
        assert!(s.due(refresh, positions).is_none(), "the write carried the moved positions too");
    }

    #[test]
    fn marks_round_trip_positions() {
        let m = Mark { offset: "1700000000000-42".into(), epoch: "e1".into() };
        let p = m.position().expect("valid");
        assert_eq!(p.offset.seq, 42);
        assert_eq!(Mark::from(&p), m);
        assert!(Mark { offset: "nope".into(), epoch: "e".into() }.position().is_none());
    }

    #[test]
    fn documents_keep_state_verbatim_and_omit_it_when_unset() {
        let doc: SessionDoc =
            serde_json::from_str(r#"{"user":"ada","channels":{"a":{"offset":"1-1","epoch":"e"}},"state":{"cart":[1,2]}}"#).expect("parse");
        assert_eq!(doc.state.as_ref().map(|s| s.get()), Some(r#"{"cart":[1,2]}"#));
        let bare = SessionDoc { user: "bob".into(), ..SessionDoc::default() };
        assert_eq!(serde_json::to_string(&bare).expect("json"), r#"{"user":"bob","channels":{}}"#);
    }
}
