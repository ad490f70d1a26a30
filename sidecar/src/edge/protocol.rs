//! Wire protocol v1: JSON text frames (see `docs/protocol.md`).
//!
//! [`parse_request`] turns a client frame into a typed [`Request`] or a [`ProtocolError`]
//! carrying a stable [`ErrorCode`]. Server frames are built here too, except the hot
//! `message` frame, which the publish script renders once in Redis so that fan-out only
//! copies bytes.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::delivery::offset::{Gap, Offset, Position};

/// Stable error codes: clients may branch on them, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadJson,
    BadRequest,
    UnknownOp,
    BadChannel,
    Forbidden,
    TooLarge,
    BinaryUnsupported,
    NotSubscribed,
    AlreadySubscribed,
    TooManySubscriptions,
    ResumeRejected,
    Unavailable,
    Unconfirmed,
    NotDurable,
    TokenExpired,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadChannel => "bad_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::ResumeRejected => "resume_rejected",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unconfirmed => "unconfirmed",
            ErrorCode::NotDurable => "not_durable",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A request the server refuses, with the request id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
    /// The channel an error without a request id is about (a restored subscription that
    /// failed, one a refreshed token no longer grants), so a client can act on it.
    pub channel: Option<String>,
}

impl ProtocolError {
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError { id, code, message: message.into(), channel: None }
    }

    pub fn with_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }

    pub fn to_frame(&self) -> String {
        let mut v = json!({"type": "error", "code": self.code.as_str(), "message": self.message});
        if let Some(id) = self.id {
            v["id"] = json!(id);
        }
        if let Some(channel) = &self.channel {
            v["channel"] = json!(channel);
        }
        v.to_string()
    }
}

pub const MAX_CHANNEL_LEN: usize = 128;
pub const MAX_KEY_LEN: usize = 64;
pub const MAX_TTL_MS: u64 = 60_000;
pub const MAX_HISTORY_LIMIT: u64 = 1000;
/// Longest publish id.
pub const MAX_PID_LEN: usize = 64;
/// Longest JWT a `refresh` may carry (the connect-time one is bounded by the HTTP request).
pub const MAX_TOKEN_LEN: usize = 8192;

/// Channel names: 1-128 of `A-Z a-z 0-9 : _ - . @ /`. Braces are excluded because they
/// would break the hash tag that keeps a channel's keys in one slot, and quotes or
/// backslashes because the publish script writes the name into JSON verbatim.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_CHANNEL_LEN && name.bytes().all(|b| b.is_ascii_alphanumeric() || b":_-.@/".contains(&b))
}

/// 1 to `max` ASCII letters, digits and the bytes of `extra`: names that become part of a
/// Redis key.
fn restricted_name(name: &str, max: usize, extra: &[u8]) -> bool {
    !name.is_empty() && name.len() <= max && name.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn valid_key(name: &str) -> bool {
    restricted_name(name, MAX_KEY_LEN, b"_-.")
}

/// A publish id becomes part of a Redis key: the ephemeral keys' alphabet, plus `:`.
pub fn valid_pid(pid: &str) -> bool {
    restricted_name(pid, MAX_PID_LEN, b"_-.:")
}

/// What a `pid` must look like, for the WebSocket and the app API alike.
pub fn pid_rule() -> String {
    format!("\"pid\" must be 1-{MAX_PID_LEN} characters of A-Z a-z 0-9 _ - . :")
}

#[derive(Debug, Clone)]
pub enum Op {
    Subscribe {
        channel: String,
        since: Option<Position>,
    },
    Unsubscribe {
        channel: String,
    },
    /// `pid`: the client's publish id, so a retry is stored once.
    Publish {
        channel: String,
        data: Box<RawValue>,
        pid: Option<String>,
    },
    Presence {
        channel: String,
    },
    Ephemeral {
        channel: String,
        key: String,
        data: Box<RawValue>,
        ttl_ms: u64,
    },
    History {
        channel: String,
        since: Option<Position>,
        limit: u64,
    },
    /// A fresh token for the same user: new grants and a later expiry.
    Refresh {
        token: String,
    },
    Ping,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: Option<u64>,
    pub op: Op,
}

/// Every field any op may carry; types are checked by hand to produce precise messages.
#[derive(Deserialize)]
struct Envelope {
    id: Option<Value>,
    op: Option<Value>,
    channel: Option<Value>,
    data: Option<Box<RawValue>>,
    since: Option<Value>,
    limit: Option<Value>,
    key: Option<Value>,
    #[serde(rename = "ttlMs")]
    ttl_ms: Option<Value>,
    token: Option<Value>,
    pid: Option<Value>,
}

/// Parses one client text frame.
pub fn parse_request(text: &str) -> Result<Request, ProtocolError> {
    let env: Envelope = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => {
            serde_json::from_str(text).map_err(|e| ProtocolError::new(None, ErrorCode::BadRequest, format!("invalid frame: {e}")))?
        }
        Ok(_) => return Err(ProtocolError::new(None, ErrorCode::BadRequest, "a frame must be a JSON object")),
        Err(e) => return Err(ProtocolError::new(None, ErrorCode::BadJson, format!("not valid JSON: {e}"))),
    };
    let id = match env.id {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => return Err(ProtocolError::new(None, ErrorCode::BadRequest, "\"id\" must be a non-negative integer")),
    };
    let bad = |msg: String| ProtocolError::new(id, ErrorCode::BadRequest, msg);
    let op = match env.op {
        Some(Value::String(op)) => op,
        Some(_) => return Err(bad("\"op\" must be a string".into())),
        None => return Err(bad("missing \"op\"".into())),
    };
    let channel = || -> Result<String, ProtocolError> {
        match &env.channel {
            Some(Value::String(c)) if valid_channel(c) => Ok(c.clone()),
            Some(Value::String(_)) => Err(ProtocolError::new(
                id,
                ErrorCode::BadChannel,
                format!("channel names are 1-{MAX_CHANNEL_LEN} characters of A-Z a-z 0-9 : _ - . @ /"),
            )),
            Some(_) => Err(bad("\"channel\" must be a string".into())),
            None => Err(bad(format!("{op} needs \"channel\""))),
        }
    };
    let data = || -> Result<Box<RawValue>, ProtocolError> {
        env.data.clone().ok_or_else(|| bad(format!("{op} needs \"data\" (any JSON value but null)")))
    };
    let since = || -> Result<Option<Position>, ProtocolError> { parse_since(env.since.as_ref()).map_err(|m| bad(m.into())) };
    let op = match op.as_str() {
        "subscribe" => Op::Subscribe { channel: channel()?, since: since()? },
        "unsubscribe" => Op::Unsubscribe { channel: channel()? },
        "publish" => {
            let pid = match &env.pid {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if valid_pid(p) => Some(p.clone()),
                Some(_) => return Err(bad(pid_rule())),
            };
            Op::Publish { channel: channel()?, data: data()?, pid }
        }
        "presence" => Op::Presence { channel: channel()? },
        "ephemeral" => {
            let key = match &env.key {
                Some(Value::String(k)) if valid_key(k) => k.clone(),
                _ => return Err(bad(format!("ephemeral needs \"key\": 1-{MAX_KEY_LEN} characters of A-Z a-z 0-9 _ - ."))),
            };
            let ttl_ms = match &env.ttl_ms {
                None => 3000,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(t) if (1..=MAX_TTL_MS).contains(&t) => t,
                    _ => return Err(bad(format!("\"ttlMs\" must be from 1 to {MAX_TTL_MS}"))),
                },
                Some(_) => return Err(bad("\"ttlMs\" must be a number".into())),
            };
            Op::Ephemeral { channel: channel()?, key, data: data()?, ttl_ms }
        }
        "history" => {
            let limit = match &env.limit {
                None => 100,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(l) if (1..=MAX_HISTORY_LIMIT).contains(&l) => l,
                    _ => return Err(bad(format!("\"limit\" must be from 1 to {MAX_HISTORY_LIMIT}"))),
                },
                Some(_) => return Err(bad("\"limit\" must be a number".into())),
            };
            Op::History { channel: channel()?, since: since()?, limit }
        }
        "refresh" => match &env.token {
            Some(Value::String(t)) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => Op::Refresh { token: t.clone() },
            _ => return Err(bad(format!("refresh needs \"token\": the new JWT, at most {MAX_TOKEN_LEN} characters"))),
        },
        "ping" => Op::Ping,
        other => {
            return Err(ProtocolError::new(
                id,
                ErrorCode::UnknownOp,
                format!("unknown op {other:?}; expected subscribe, unsubscribe, publish, presence, ephemeral, history, refresh or ping"),
            ));
        }
    };
    Ok(Request { id, op })
}

/// Parses the `since` query parameter of a resume: a JSON object from channel to position,
/// `{"room:1":{"offset":"<ms>-<seq>","epoch":"<e>"}}`, at most `max` channels.
pub fn parse_positions(json_text: &str, max: usize) -> Result<HashMap<String, Position>, String> {
    let shape = "`since` must be a JSON object like {\"room:1\":{\"offset\":\"<ms>-<seq>\",\"epoch\":\"<e>\"}}";
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json_text) else { return Err(shape.to_string()) };
    if map.len() > max {
        return Err(format!("`since` names {} channels; at most {max} (SF_MAX_SUBSCRIPTIONS)", map.len()));
    }
    let mut out = HashMap::with_capacity(map.len());
    for (channel, v) in &map {
        if !valid_channel(channel) {
            return Err(format!("`since` names {channel:?}, which is not a valid channel name"));
        }
        match parse_since(Some(v)) {
            Ok(Some(p)) => {
                out.insert(channel.clone(), p);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("`since` for {channel:?}: {e}")),
        }
    }
    Ok(out)
}

fn parse_since(v: Option<&Value>) -> Result<Option<Position>, &'static str> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("\"since\" must be an object {\"offset\":\"<ms>-<seq>\",\"epoch\":\"<e>\"}"),
    };
    let offset = match obj.get("offset") {
        Some(Value::String(s)) => s.parse::<Offset>().map_err(|_| "\"since.offset\" must look like <ms>-<seq>")?,
        _ => return Err("\"since.offset\" must be a string like \"1700000000000-42\""),
    };
    let epoch = match obj.get("epoch") {
        Some(Value::String(s)) if s.len() <= 64 => s.clone(),
        _ => return Err("\"since.epoch\" must be the epoch string the server sent"),
    };
    Ok(Some(Position { offset, epoch }))
}

/// `{"type":"error",...}`.
pub fn error_frame(id: Option<u64>, code: ErrorCode, message: &str) -> String {
    ProtocolError::new(id, code, message).to_frame()
}

/// `{"type":"reply","id":7,"ok":true, ...extra}`; `extra` must be an object.
pub fn reply_frame(id: Option<u64>, extra: Value) -> String {
    let mut v = json!({"type": "reply", "ok": true});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    if let (Value::Object(dst), Value::Object(src)) = (&mut v, extra) {
        dst.extend(src);
    }
    v.to_string()
}

pub fn gap_json(gap: &Gap) -> Value {
    let mut v = json!({"from": gap.from.to_string(), "to": gap.to.to_string()});
    if let Some(missed) = gap.missed {
        v["missed"] = json!(missed);
    }
    v
}

/// `{"type":"subscribed",...}`: the position the client is at once recovery completes.
pub fn subscribed_frame(id: Option<u64>, channel: &str, offset: Offset, epoch: &str, recovered: bool, gap: Option<&Gap>) -> String {
    let mut v = json!({
        "type": "subscribed", "channel": channel, "offset": offset.to_string(), "epoch": epoch,
        "recovered": recovered, "gap": gap.map(gap_json),
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

/// `{"type":"gap",...}`: sent mid-subscription when the server itself lost track of a
/// channel (its stream was recreated in a new epoch while the pod was resubscribing).
pub fn gap_frame(channel: &str, epoch: &str, gap: &Gap) -> String {
    let mut v = gap_json(gap);
    v["type"] = json!("gap");
    v["channel"] = json!(channel);
    v["epoch"] = json!(epoch);
    v.to_string()
}

/// A `message` frame for an entry read from history (live ones come pre-rendered).
pub fn message_frame(channel: &str, offset: Offset, epoch: &str, data: &str) -> String {
    format!(r#"{{"type":"message","channel":"{channel}","offset":"{offset}","epoch":"{epoch}","data":{data}}}"#)
}

/// The first frame. A resumed session also lists the subscriptions being restored (their
/// `subscribed` frames follow) and the app's custom state.
pub fn welcome_frame(
    session: &str,
    resume_token: &str,
    node: &str,
    resumed: bool,
    subscriptions: &[String],
    state: Option<&RawValue>,
) -> String {
    let mut v = json!({"type": "welcome", "session": session, "resumeToken": resume_token, "node": node, "resumed": resumed});
    if resumed {
        v["subscriptions"] = json!(subscriptions);
        v["state"] = state.and_then(|s| serde_json::from_str::<Value>(s.get()).ok()).unwrap_or(Value::Null);
    }
    v.to_string()
}

/// The connection's token expires at `expires` (Unix seconds) and the connection ends at
/// `closes_at`: refresh it in band or reconnect with a fresh one.
pub fn expiring_frame(expires: u64, closes_at: u64) -> String {
    json!({"type": "expiring", "expiresAt": expires, "closesAt": closes_at}).to_string()
}

pub fn reconnect_frame(resume_token: &str, delay_ms: u64, reason: &str) -> String {
    json!({"type": "reconnect", "resumeToken": resume_token, "delayMs": delay_ms, "reason": reason}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ProtocolError {
        parse_request(text).expect_err("should be rejected")
    }

    #[test]
    fn parses_every_op() {
        let r = parse_request(r#"{"op":"subscribe","channel":"room:1","id":3,"since":{"offset":"5-2","epoch":"e1"}}"#).expect("valid");
        assert_eq!(r.id, Some(3));
        match r.op {
            Op::Subscribe { channel, since } => {
                assert_eq!(channel, "room:1");
                assert_eq!(since, Some(Position { offset: Offset { ms: 5, seq: 2 }, epoch: "e1".into() }));
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = parse_request(r#"{"op":"publish","channel":"a","data":{"x":[1,2]}}"#).expect("valid");
        match r.op {
            Op::Publish { data, .. } => assert_eq!(data.get(), r#"{"x":[1,2]}"#),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(parse_request(r#"{"op":"ping"}"#).expect("valid").op, Op::Ping));
        assert!(matches!(parse_request(r#"{"op":"unsubscribe","channel":"a"}"#).expect("valid").op, Op::Unsubscribe { .. }));
        assert!(matches!(parse_request(r#"{"op":"presence","channel":"a"}"#).expect("valid").op, Op::Presence { .. }));
        assert!(matches!(
            parse_request(r#"{"op":"ephemeral","channel":"a","key":"typing","data":true}"#).expect("valid").op,
            Op::Ephemeral { ttl_ms: 3000, .. }
        ));
        assert!(matches!(
            parse_request(r#"{"op":"history","channel":"a","limit":5}"#).expect("valid").op,
            Op::History { limit: 5, since: None, .. }
        ));
    }

    #[test]
    fn rejects_bad_input_with_stable_codes() {
        assert_eq!(err("{not json").code, ErrorCode::BadJson);
        assert_eq!(err("[1,2]").code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"id":1}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"fly","id":9}"#), ProtocolError { id: Some(9), ..err(r#"{"op":"fly","id":9}"#) });
        assert_eq!(err(r#"{"op":"fly","id":9}"#).code, ErrorCode::UnknownOp);
        assert_eq!(err(r#"{"op":7}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"subscribe"}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"subscribe","channel":5}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"subscribe","channel":"a{b}"}"#).code, ErrorCode::BadChannel);
        assert_eq!(err(r#"{"op":"subscribe","channel":""}"#).code, ErrorCode::BadChannel);
        assert_eq!(err(&format!(r#"{{"op":"subscribe","channel":"{}"}}"#, "a".repeat(129))).code, ErrorCode::BadChannel);
        assert_eq!(err(r#"{"op":"subscribe","channel":"a","since":{"offset":"x"}}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"publish","channel":"a"}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"publish","channel":"a","data":null}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"ephemeral","channel":"a","key":"t","data":1,"ttlMs":0}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"history","channel":"a","limit":100000}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"ping","id":-1}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"op":"ping","id":"x"}"#).id, None);
    }

    #[test]
    fn frames_are_valid_json() {
        let f: Value = serde_json::from_str(&error_frame(Some(4), ErrorCode::Forbidden, "no \"quote\" issues")).expect("json");
        assert_eq!(f["id"], 4);
        assert_eq!(f["code"], "forbidden");
        let f: Value = serde_json::from_str(&message_frame("a:b", Offset { ms: 1, seq: 2 }, "e", r#"{"k":1}"#)).expect("json");
        assert_eq!(f["offset"], "1-2");
        assert_eq!(f["data"]["k"], 1);
        let gap = Gap { from: Offset { ms: 1, seq: 2 }, to: Offset { ms: 3, seq: 9 }, missed: Some(6) };
        let f: Value =
            serde_json::from_str(&subscribed_frame(Some(1), "c", Offset { ms: 3, seq: 9 }, "e", false, Some(&gap))).expect("json");
        assert_eq!(f["gap"]["missed"], 6);
        let f: Value = serde_json::from_str(&reply_frame(Some(2), json!({"offset": "1-1"}))).expect("json");
        assert_eq!((f["ok"].as_bool(), f["offset"].as_str()), (Some(true), Some("1-1")));
    }

    #[test]
    fn parses_resume_positions_and_explains_bad_ones() {
        let p = parse_positions(r#"{"room:1":{"offset":"5-2","epoch":"e1"},"b":null}"#, 4).expect("valid");
        assert_eq!(p.len(), 1);
        assert_eq!(p["room:1"].offset, Offset { ms: 5, seq: 2 });
        assert!(parse_positions("[1]", 4).expect_err("array").contains("JSON object"));
        assert!(parse_positions(r#"{"bad name":{"offset":"1-1","epoch":"e"}}"#, 4).expect_err("name").contains("not a valid channel"));
        assert!(parse_positions(r#"{"a":{"offset":"x","epoch":"e"}}"#, 4).expect_err("offset").contains("\"a\""));
        assert!(parse_positions(r#"{"a":null,"b":null}"#, 1).expect_err("too many").contains("at most 1"));
    }

    #[test]
    fn a_resumed_welcome_lists_its_subscriptions_and_state() {
        let state = RawValue::from_string(r#"{"cart":3}"#.into()).expect("raw");
        let f: Value = serde_json::from_str(&welcome_frame("s", "t", "n", true, &["a".into()], Some(&state))).expect("json");
        assert_eq!((f["subscriptions"][0].as_str(), f["state"]["cart"].as_i64()), (Some("a"), Some(3)));
        let f: Value = serde_json::from_str(&welcome_frame("s", "t", "n", false, &[], None)).expect("json");
        assert!(f.get("subscriptions").is_none() && f.get("state").is_none());
    }
}
