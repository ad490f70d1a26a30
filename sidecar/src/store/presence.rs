//! Presence (who is subscribed to a channel) and ephemeral keys ("user is typing").
//!
//! Members live in the sorted set `sf:{<ch>}:presence`, scored by their expiry time, so
//! entries of a pod that died without cleaning up expire on their own: every pod refreshes
//! the scores of its own members every third of the presence TTL, and readers drop
//! expired entries. Join and leave are broadcast as transient events on the channel; the
//! leave of a connection that was lost rather than closed waits one TTL, and is not sent
//! when the session resumed meanwhile. Such a member stays listed until then: at the loss
//! its expiry is set to one TTL from then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use serde_json::json;
use serde_json::value::RawValue;

use crate::backend::script::Script;
use crate::clock::unix_ms;
use crate::store::channels::{ChannelError, ChannelStore};
use crate::store::keys::{self, shard_channel};

/// A member as stored: `<session>|<user>`.
fn member(session: &str, user: &str) -> String {
    format!("{session}|{user}")
}

fn presence_key(channel: &str) -> String {
    keys::presence(channel)
}

/// Removes member ARGV[1] of presence set KEYS[1] and announces its leave (ARGV[3]) on shard
/// channel KEYS[2], only if its expiry is past (ARGV[2], now in ms): nobody refreshed it.
const LEAVE_IF_EXPIRED: &str = r"
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SPUBLISH', KEYS[2], ARGV[3])
  return 1
end
return 0
";

/// Past a lost member's TTL, so that a refresh in flight when it expired has landed.
const LEAVE_MARGIN: Duration = Duration::from_secs(1);

/// Presence reads return at most this many members.
pub const MAX_MEMBERS: isize = 1000;

pub struct Presence {
    store: Arc<ChannelStore>,
    ttl: Duration,
    leave_if_expired: Script,
    /// This pod's members per channel, refreshed periodically.
    local: Mutex<HashMap<String, HashSet<String>>>,
}

impl Presence {
    pub fn new(store: Arc<ChannelStore>, ttl: Duration) -> Arc<Presence> {
        Arc::new(Presence { store, ttl, leave_if_expired: Script::new(LEAVE_IF_EXPIRED), local: Mutex::new(HashMap::new()) })
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(kind: &str, channel: &str, session: &str, user: &str) -> String {
        ChannelStore::event_payload(&json!({"type": kind, "channel": channel, "client": session, "user": user}).to_string())
    }

    /// Adds the member; `announce` broadcasts a `join` (not for a resumed session, whose
    /// member never left: presence must not flap across a drain).
    pub async fn join(&self, channel: &str, session: &str, user: &str, announce: bool) -> Result<(), ChannelError> {
        let m = member(session, user);
        self.local().entry(channel.to_string()).or_default().insert(m.clone());
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD").arg(presence_key(channel)).arg(unix_ms() + self.ttl.as_millis() as u64).arg(&m);
        pipe.cmd("PEXPIRE").arg(presence_key(channel)).arg(self.ttl.as_millis() as u64 * 2);
        if announce {
            pipe.cmd("SPUBLISH").arg(shard_channel(channel)).arg(Self::event("join", channel, session, user));
        }
        self.store.on_channel(channel, &pipe, true).await.map(|_| ())
    }

    /// Stops refreshing a member from this pod without removing it: a drained client's
    /// entry stays until its resumed session refreshes it, or it expires.
    pub fn hand_off(&self, channel: &str, session: &str, user: &str) {
        self.forget_local(channel, &member(session, user));
    }

    fn forget_local(&self, channel: &str, m: &str) {
        let mut local = self.local();
        if let Some(set) = local.get_mut(channel) {
            set.remove(m);
            if set.is_empty() {
                local.remove(channel);
            }
        }
    }

    /// The members of a connection that was lost (not closed), one per channel: kept for
    /// one TTL from the loss, then no longer refreshed; if its session resumed anywhere by
    /// then, the resumed pod has refreshed it and nothing is announced, otherwise it is
    /// removed and its `leave` broadcast then. A pod that stops before that lets such
    /// members expire without an event, as a crashed pod's do.
    pub fn leave_unless_back(self: &Arc<Self>, channels: Vec<String>, session: &str, user: &str) {
        let m = member(session, user);
        for channel in &channels {
            self.forget_local(channel, &m);
        }
        // One task per lost connection, whatever its number of channels.
        let (this, session, user) = (self.clone(), session.to_string(), user.to_string());
        tokio::spawn(async move {
            // Listed until its leave: the expiry becomes one TTL from the loss (it was one
            // TTL from the last periodic refresh, up to a third of a TTL earlier). `GT`: a
            // resumed session's refresh is never pulled back; `XX`: a member already gone
            // is not brought back.
            let expiry = unix_ms() + this.ttl.as_millis() as u64;
            for channel in &channels {
                let mut pipe = redis::pipe();
                pipe.cmd("ZADD").arg(presence_key(channel)).arg("XX").arg("GT").arg(expiry).arg(&m);
                if let Err(e) = this.store.on_channel(channel, &pipe, true).await {
                    tracing::warn!(%channel, error = %e, "presence of a lost connection not extended; it may be unlisted before its leave");
                }
            }
            tokio::time::sleep(this.ttl + LEAVE_MARGIN).await;
            for channel in channels {
                let (key, shard, event) =
                    (presence_key(&channel), shard_channel(&channel), Self::event("leave", &channel, &session, &user));
                let now = unix_ms().to_string();
                let args: [&[u8]; 3] = [m.as_bytes(), now.as_bytes(), event.as_bytes()];
                if let Err(e) = this.store.run_script(&this.leave_if_expired, &[&key, &shard], &args).await {
                    tracing::warn!(%channel, error = %e, "presence leave of a lost connection failed; the member expires on its own");
                }
            }
        });
    }

    pub async fn leave(&self, channel: &str, session: &str, user: &str) -> Result<(), ChannelError> {
        let m = member(session, user);
        self.forget_local(channel, &m);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(presence_key(channel)).arg(&m);
        pipe.cmd("SPUBLISH").arg(shard_channel(channel)).arg(Self::event("leave", channel, session, user));
        self.store.on_channel(channel, &pipe, true).await.map(|_| ())
    }

    /// Current members as `{"client": session, "user": user}`, expired ones dropped.
    pub async fn list(&self, channel: &str) -> Result<Vec<serde_json::Value>, ChannelError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE").arg(presence_key(channel)).arg("-inf").arg(unix_ms());
        pipe.cmd("ZRANGE").arg(presence_key(channel)).arg(0).arg(MAX_MEMBERS - 1);
        let reply = self.store.on_channel(channel, &pipe, true).await?;
        let mut members = Vec::new();
        if let Some(Value::Array(items)) = reply.get(1) {
            for item in items {
                if let Value::BulkString(b) = item
                    && let Some((session, user)) = String::from_utf8_lossy(b).split_once('|')
                {
                    members.push(json!({"client": session, "user": user}));
                }
            }
        }
        Ok(members)
    }

    /// Sets an ephemeral key with a TTL and broadcasts it to the channel.
    pub async fn ephemeral(&self, channel: &str, key: &str, user: &str, data: &RawValue, ttl_ms: u64) -> Result<(), ChannelError> {
        let frame = format!(
            r#"{{"type":"ephemeral","channel":"{channel}","key":"{key}","from":{},"data":{},"ttlMs":{ttl_ms}}}"#,
            json!(user),
            data.get()
        );
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(keys::ephemeral(channel, key, user)).arg(data.get()).arg("PX").arg(ttl_ms);
        pipe.cmd("SPUBLISH").arg(shard_channel(channel)).arg(ChannelStore::event_payload(&frame));
        self.store.on_channel(channel, &pipe, true).await.map(|_| ())
    }

    /// Refreshes this pod's members so they outlive the TTL; runs until dropped.
    pub async fn refresh_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        loop {
            tick.tick().await;
            let snapshot: Vec<(String, Vec<String>)> = self.local().iter().map(|(c, m)| (c.clone(), m.iter().cloned().collect())).collect();
            let expiry = unix_ms() + self.ttl.as_millis() as u64;
            for (channel, members) in snapshot {
                let mut pipe = redis::pipe();
                for m in &members {
                    pipe.cmd("ZADD").arg(presence_key(&channel)).arg(expiry).arg(m);
                }
                pipe.cmd("PEXPIRE").arg(presence_key(&channel)).arg(self.ttl.as_millis() as u64 * 2);
                if let Err(e) = self.store.on_channel(&channel, &pipe, true).await {
                    tracing::warn!(%channel, error = %e, "presence refresh failed");
                }
            }
        }
    }
}
