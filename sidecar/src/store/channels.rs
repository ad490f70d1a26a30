//! A channel's data in Redis, and the scripts that keep it consistent.
//!
//! Keys of channel `<ch>` share the hash tag `{<ch>}`, so they live in one slot and one
//! script can touch them atomically (see `docs/architecture.md`, "Redis layout"):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sf:{<ch>}:log` | stream | history, ids `<ms>-<seq>`, field `d` = data JSON |
//! | `sf:{<ch>}:meta` | hash | `e` epoch, `s` last seq, `m` last ms |
//! | `sf:{<ch>}:presence` | zset | members, scored by expiry (ms) |
//! | `sf:{<ch>}:eph:<key>:<user>` | string | ephemeral state, with a TTL |
//! | `sf:{<ch>}:pid:<pid>` | string | `<offset> <epoch>` of a publish id, as long as history |
//! | `sf:{<ch>}` | shard channel | live publications and events |
//!
//! A shard-channel payload is a header line then the client frame, rendered once:
//! `m <offset> <epoch>\n{"type":"message",...}` for publications, `x\n{...}` for
//! transient events (join, leave, ephemeral). The hub forwards the frame bytes untouched.

use std::sync::Arc;

use redis::Value;
use serde_json::value::RawValue;

use crate::backend::router::{Router, RouterError};
use crate::backend::script::Script;
use crate::backend::slot::key_slot;
use crate::backend::topology::text;
use crate::delivery::offset::Offset;
use crate::store::keys::{self, shard_channel};

/// XADD with our own `<ms>-<seq>` id, trim, expire, SPUBLISH the rendered frame.
/// A missing meta hash means the stream is new (or was lost): start a new epoch.
/// With a publish id (KEYS[4]) already used in the current epoch, nothing is published and
/// the first publication's id and epoch are returned, flagged 1: a retry is stored once.
const PUBLISH: &str = r#"
if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local sep = string.find(seen, ' ', 1, true)
    local epoch = string.sub(seen, sep + 1)
    if epoch == redis.call('HGET', KEYS[2], 'e') then return {string.sub(seen, 1, sep - 1), epoch, 1} end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0, 'm', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
local last = tonumber(redis.call('HGET', KEYS[2], 'm'))
if now < last then now = last end
redis.call('HSET', KEYS[2], 'm', now)
local id = now .. '-' .. seq
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], id, 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SPUBLISH', KEYS[3], 'm ' .. id .. ' ' .. epoch .. '\n{"type":"message","channel":"' .. ARGV[4] .. '","offset":"' .. id .. '","epoch":"' .. epoch .. '","data":' .. ARGV[1] .. '}')
if KEYS[4] then redis.call('SET', KEYS[4], id .. ' ' .. epoch, 'PX', ARGV[3]) end
return {id, epoch, 0}
"#;

/// Returns `{epoch, last_ms, last_seq, first_id|false, entries}` where entries are the
/// stream entries strictly after ARGV[1], at most ARGV[2]. Creates the epoch when absent so
/// that a subscriber of a quiet channel has a position to recover from later.
const READ: &str = r#"
local meta = redis.call('HMGET', KEYS[2], 'e', 's', 'm')
if not meta[1] then
  local t = redis.call('TIME')
  meta = {string.format('%x%05x', tonumber(t[1]), tonumber(t[2])), '0', '0'}
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', meta[1], 's', 0, 'm', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first_id = false
if first[1] then first_id = first[1][1] end
local entries = {}
if tonumber(ARGV[2]) > 0 then entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]) end
return {meta[1], meta[3], meta[2], first_id, entries}
"#;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("Redis: {0}")]
    Redis(#[from] RouterError),
    #[error("the publication was stored and delivered, but no replica confirmed it in time: a primary failover may lose it")]
    NotDurable,
    #[error("unexpected reply from Redis: {0}")]
    Reply(&'static str),
}

/// What a publisher may conclude from a failed publish: one classification for the
/// WebSocket and the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFailure {
    /// Certainly not published: Redis refused or was never reached.
    NotPublished,
    /// Sent, no answer: it may have been published. A retry with the same publish id is safe.
    Unconfirmed,
    /// Published, but no replica confirmed it (durable publish).
    NotDurable,
}

impl ChannelError {
    pub fn publish_failure(&self) -> PublishFailure {
        match self {
            ChannelError::NotDurable => PublishFailure::NotDurable,
            ChannelError::Redis(RouterError::Unconfirmed(_)) | ChannelError::Reply(_) => PublishFailure::Unconfirmed,
            ChannelError::Redis(_) => PublishFailure::NotPublished,
        }
    }
}

/// An acknowledged publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub offset: Offset,
    pub epoch: String,
    /// Its publish id was used before: this is the first publication's offset, nothing new
    /// was stored.
    pub repeated: bool,
}

/// Where a channel stands, and history after a position.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub epoch: String,
    pub last: Offset,
    pub first: Option<Offset>,
    pub entries: Vec<(Offset, String)>,
}

/// Settings that shape every channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub history_size: u32,
    pub history_ttl_ms: u64,
    pub durable_publish: bool,
    pub wait_timeout_ms: u64,
}

pub struct ChannelStore {
    router: Arc<Router>,
    settings: ChannelSettings,
    publish: Script,
    read: Script,
}

fn keys(channel: &str) -> (String, String, String) {
    (keys::log(channel), keys::meta(channel), shard_channel(channel))
}

impl ChannelStore {
    pub fn new(router: Arc<Router>, settings: ChannelSettings) -> ChannelStore {
        ChannelStore { router, settings, publish: Script::new(PUBLISH), read: Script::new(READ) }
    }

    /// Runs `script` on `keys` (of one channel's slot), retried like any idempotent query:
    /// for the scripts of other stores on the same channels (presence).
    pub async fn run_script(&self, script: &Script, keys: &[&str], args: &[&[u8]]) -> Result<Vec<Value>, ChannelError> {
        Ok(script.run(&self.router, keys, args, true, None).await?)
    }

    /// Runs one of the channel scripts on the channel's keys (and `extra`, of the same slot).
    async fn run(
        &self,
        script: &Script,
        channel: &str,
        extra: Option<&str>,
        args: &[&[u8]],
        idempotent: bool,
        then: Option<&redis::Cmd>,
    ) -> Result<Vec<Value>, ChannelError> {
        let (log, meta, shard) = keys(channel);
        let mut all = vec![log.as_str(), meta.as_str(), shard.as_str()];
        all.extend(extra);
        Ok(script.run(&self.router, &all, args, idempotent, then).await?)
    }

    /// Appends to history and publishes. With a publish id, a second publish of that id
    /// within the history window stores nothing and answers the first one's offset.
    pub async fn publish(&self, channel: &str, data: &RawValue, pid: Option<&str>) -> Result<Published, ChannelError> {
        let size = self.settings.history_size.to_string();
        let ttl = self.settings.history_ttl_ms.to_string();
        let wait = self.settings.durable_publish.then(|| {
            let mut c = redis::cmd("WAIT");
            c.arg(1).arg(self.settings.wait_timeout_ms);
            c
        });
        let args: [&[u8]; 4] = [data.get().as_bytes(), size.as_bytes(), ttl.as_bytes(), channel.as_bytes()];
        let pid_key = pid.map(|p| keys::publish_id(channel, p));
        let reply = self.run(&self.publish, channel, pid_key.as_deref(), &args, false, wait.as_ref()).await?;
        let Some(Value::Array(parts)) = reply.first() else { return Err(ChannelError::Reply("publish")) };
        let offset = parts.first().and_then(text).and_then(|s| s.parse().ok()).ok_or(ChannelError::Reply("publish id"))?;
        let epoch = parts.get(1).and_then(text).ok_or(ChannelError::Reply("publish epoch"))?;
        let repeated = matches!(parts.get(2), Some(Value::Int(1)));
        if self.settings.durable_publish && !matches!(reply.get(1), Some(Value::Int(n)) if *n >= 1) {
            return Err(ChannelError::NotDurable);
        }
        Ok(Published { offset, epoch, repeated })
    }

    /// Reads the channel's position and up to `limit` entries strictly after `after`.
    pub async fn read(&self, channel: &str, after: Offset, limit: u32) -> Result<HistoryPage, ChannelError> {
        let start = format!("({after}");
        let limit = limit.to_string();
        let ttl = self.settings.history_ttl_ms.to_string();
        let args: [&[u8]; 3] = [start.as_bytes(), limit.as_bytes(), ttl.as_bytes()];
        let reply = self.run(&self.read, channel, None, &args, true, None).await?;
        let Some(Value::Array(parts)) = reply.first() else { return Err(ChannelError::Reply("read")) };
        let field = |i: usize| parts.get(i).and_then(text);
        let epoch = field(0).ok_or(ChannelError::Reply("read epoch"))?;
        let last =
            Offset { ms: field(1).and_then(|s| s.parse().ok()).unwrap_or(0), seq: field(2).and_then(|s| s.parse().ok()).unwrap_or(0) };
        let first = field(3).and_then(|s| s.parse().ok());
        let mut entries = Vec::new();
        if let Some(Value::Array(items)) = parts.get(4) {
            for item in items {
                let Value::Array(pair) = item else { continue };
                let id = pair.first().and_then(text).and_then(|s| s.parse::<Offset>().ok());
                let data = match pair.get(1) {
                    Some(Value::Array(fv)) => fv.get(1).and_then(text),
                    _ => None,
                };
                if let (Some(id), Some(data)) = (id, data) {
                    entries.push((id, data));
                }
            }
        }
        Ok(HistoryPage { epoch, last, first, entries })
    }

    /// Runs plain commands on the slot of `channel` (presence, ephemeral keys).
    pub async fn on_channel(&self, channel: &str, pipe: &redis::Pipeline, idempotent: bool) -> Result<Vec<Value>, ChannelError> {
        Ok(self.router.query(key_slot(shard_channel(channel).as_bytes()), pipe, idempotent).await?)
    }

    /// Publishes a transient event (not stored in history).
    pub fn event_payload(frame: &str) -> String {
        format!("x\n{frame}")
    }
}
