//! Protocol adapters: how each benchmarked system is spoken to over one WebSocket. The
//! generator drives every system through the same few actions (open, get ready, deliver,
//! acknowledge, reconnect), so the systems differ only in what goes over the wire:
//!
//! - `socketfleet`: protocol v1 (`/ws`), resume with `?resume=<token>&since=<offsets>`;
//! - `centrifugo`: Centrifuge's JSON protocol (`/connection/websocket`), newline-batched
//!   frames, server pings answered, resubscribe with `recover` + offset + epoch;
//! - `socketio`: Engine.IO 4 / Socket.IO 5 packets over the WebSocket transport, connection
//!   state recovery with `pid` + `offset`;
//! - `wsredis`: the plain peer's own frames; nothing to recover with.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::payload::{self, Stamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    SocketFleet,
    Centrifugo,
    SocketIo,
    WsRedis,
}

/// The id of a subscriber's subscribe request; publishes count up from `FIRST_PUBLISH_ID`.
const SUBSCRIBE_ID: u64 = 2;
pub const FIRST_PUBLISH_ID: u64 = 10;

/// One connection's protocol state: its role, what it needs to resume, whether it is ready
/// (a subscriber: subscribed; a publisher or idle client: connected).
#[derive(Debug, Default)]
pub struct Conn {
    /// The subscriber's channel index; `None` for publishers and idle clients.
    pub channel: Option<u32>,
    /// SocketFleet's resume token or Socket.IO's private session id.
    pub token: Option<String>,
    pub offset: Option<String>,
    pub epoch: Option<String>,
    pub ready: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Deliver(Stamp),
    Send(String),
    Ready,
    Ack {
        id: u64,
        ok: bool,
    },
    /// The server asked the client to go (drain, shutdown); reconnect after the delay.
    Reconnect {
        delay_ms: u64,
    },
    /// A resume token was presented: the session resumed (true) or was refused (false).
    Resumed(bool),
}

/// Channels are `<prefix>:<n>`; two runs side by side (one holding load, one publishing
/// through a scale-down) pass different prefixes so neither sees the other's messages.
static CHANNEL_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the channel prefix once, before any client starts (`--channel-prefix`).
pub fn set_channel_prefix(prefix: &str) {
    let _ = CHANNEL_PREFIX.set(prefix.to_string());
}

pub fn channel_name(channel: u32) -> String {
    format!("{}:{channel}", CHANNEL_PREFIX.get().map_or("bench", String::as_str))
}

impl System {
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "socketfleet" => Self::SocketFleet,
            "centrifugo" => Self::Centrifugo,
            "socketio" => Self::SocketIo,
            "wsredis" => Self::WsRedis,
            other => anyhow::bail!("unknown system {other:?} (socketfleet, centrifugo, socketio, wsredis)"),
        })
    }

    /// The URL to open for `addr` (`host:port`), carrying resume state where the protocol
    /// puts it in the URL.
    pub fn url(self, addr: &str, conn: &Conn) -> String {
        match self {
            Self::SocketFleet => match (&conn.token, conn.channel) {
                (Some(token), Some(channel)) => {
                    let mut url = format!("ws://{addr}/ws?resume={}", encode(token));
                    if let (Some(offset), Some(epoch)) = (&conn.offset, &conn.epoch) {
                        let since = json!({ channel_name(channel): {"offset": offset, "epoch": epoch} });
                        url.push_str(&format!("&since={}", encode(&since.to_string())));
                    }
                    url
                }
                _ => format!("ws://{addr}/ws"),
            },
            Self::Centrifugo => format!("ws://{addr}/connection/websocket"),
            Self::SocketIo => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
            Self::WsRedis => format!("ws://{addr}/"),
        }
    }

    /// Frames to send right after the WebSocket opens.
    pub fn on_open(self, conn: &mut Conn, out: &mut Vec<Action>) {
        match self {
            Self::Centrifugo => out.push(Action::Send(r#"{"id":1,"connect":{}}"#.into())),
            Self::WsRedis => match conn.channel {
                Some(channel) => out.push(Action::Send(json!({"sub": channel_name(channel), "id": SUBSCRIBE_ID}).to_string())),
                None => {
                    conn.ready = true;
                    out.push(Action::Ready);
                }
            },
            Self::SocketFleet | Self::SocketIo => {}
        }
    }

    /// How long a client waits before reconnect attempt `attempt` (0: the first, after a
    /// connection that had been up dropped without the server saying when; n: after n
    /// failed attempts in a row). Socket.IO clients wait what socket.io-client's defaults
    /// give (`reconnectionDelay` 1000 ms doubling per attempt up to `reconnectionDelayMax`
    /// 5000 ms, `randomizationFactor` 0.5): 500–1500 ms, then 1000–3000 ms, ...; a
    /// generator that retried faster would pile handshakes onto a restarting Node server
    /// that its real clients spare. The others reconnect at once and retry after 50 ms
    /// per failed attempt (at most 1 s), which can only favour them. `seed` picks the jitter.
    pub fn reconnect_delay_ms(self, attempt: u32, seed: u64) -> u64 {
        match self {
            Self::SocketIo => {
                let base = 1000u64 << attempt.min(12);
                let deviation = splitmix64(seed) % (base / 2 + 1);
                let delay = if splitmix64(seed ^ 0x5bd1) & 1 == 0 { base - deviation } else { base + deviation };
                delay.min(5000)
            }
            _ => (50 * u64::from(attempt)).min(1000),
        }
    }

    /// Whether a publish whose outcome is unknown can be sent again without risking a second
    /// copy: SocketFleet's publish carries a client-chosen `pid` that its publish script
    /// stores once (its client library retries such publishes); the peers' protocols have
    /// nothing like it, so their clients cannot retry safely.
    pub fn idempotent_publish(self) -> bool {
        self == Self::SocketFleet
    }

    /// A publish request; `pid` names the publication across retries (where the protocol
    /// has a place for it).
    pub fn publish(self, channel: u32, payload: &str, id: u64, pid: &str) -> String {
        let channel = channel_name(channel);
        match self {
            Self::SocketFleet => json!({"op": "publish", "channel": channel, "data": payload, "id": id, "pid": pid}).to_string(),
            Self::Centrifugo => json!({"id": id, "publish": {"channel": channel, "data": payload}}).to_string(),
            Self::SocketIo => format!("42{id}{}", json!(["pub", channel, payload])),
            Self::WsRedis => json!({"pub": channel, "data": payload, "id": id}).to_string(),
        }
    }

    /// Reads one text frame; appends what the client must do about it to `out`.
    pub fn on_frame(self, text: &str, conn: &mut Conn, out: &mut Vec<Action>) {
        match self {
            Self::SocketFleet => socketfleet(text, conn, out),
            Self::Centrifugo => {
                for line in text.split('\n').filter(|l| !l.is_empty()) {
                    centrifugo(line, conn, out);
                }
            }
            Self::SocketIo => socketio(text, conn, out),
            Self::WsRedis => wsredis(text, conn, out),
        }
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn ready(conn: &mut Conn, out: &mut Vec<Action>) {
    if !conn.ready {
        conn.ready = true;
        out.push(Action::Ready);
    }
}

fn deliver(data: &str, out: &mut Vec<Action>) {
    if let Some(stamp) = payload::find(data) {
        out.push(Action::Deliver(stamp));
    }
}

#[derive(Deserialize)]
struct SfFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: Option<u64>,
    #[serde(borrow)]
    offset: Option<Cow<'a, str>>,
    #[serde(borrow)]
    epoch: Option<Cow<'a, str>>,
    #[serde(rename = "resumeToken")]
    resume_token: Option<String>,
    resumed: Option<bool>,
    /// What a resumed session restored (the welcome says).
    subscriptions: Option<Vec<String>>,
    #[serde(rename = "delayMs")]
    delay_ms: Option<u64>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// The string value of `"key":"..."` in a flat JSON frame, without parsing the frame: the
/// generator reads every delivery on one core, and what it spends per message is taken
/// from the servers it measures, so every adapter reads deliveries by scanning.
fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = text[start..].strip_prefix("\":\"")?;
    rest.find('"').map(|end| &rest[..end])
}

fn socketfleet(text: &str, conn: &mut Conn, out: &mut Vec<Action>) {
    if text.starts_with(r#"{"type":"message""#) {
        deliver(text, out);
        conn.offset = string_field(text, r#""offset"#).map(str::to_string);
        conn.epoch = string_field(text, r#""epoch"#).map(str::to_string);
        return;
    }
    let Ok(frame) = serde_json::from_str::<SfFrame>(text) else { return };
    match &*frame.kind {
        "message" => {
            deliver(text, out);
            conn.offset = frame.offset.map(Cow::into_owned);
            conn.epoch = frame.epoch.map(Cow::into_owned);
        }
        "welcome" => {
            if frame.resumed == Some(true) {
                out.push(Action::Resumed(true));
            }
            conn.token = frame.resume_token;
            match conn.channel {
                None => ready(conn, out),
                // A resumed session restores what its welcome lists (a subscribe still in
                // flight when the client was handed off is not among it: the client
                // library subscribes again); a fresh one subscribes, from the last offset
                // when there is one.
                Some(channel)
                    if frame.resumed == Some(true) && frame.subscriptions.as_ref().is_some_and(|s| s.contains(&channel_name(channel))) => {}
                Some(channel) => {
                    let mut sub = json!({"op": "subscribe", "channel": channel_name(channel), "id": SUBSCRIBE_ID});
                    if let (Some(offset), Some(epoch)) = (&conn.offset, &conn.epoch) {
                        sub["since"] = json!({"offset": offset, "epoch": epoch});
                    }
                    out.push(Action::Send(sub.to_string()));
                }
            }
        }
        "subscribed" => ready(conn, out),
        "reply" => out.extend(frame.id.map(|id| Action::Ack { id, ok: true })),
        "error" if frame.code.as_deref() == Some("resume_rejected") => out.push(Action::Resumed(false)),
        "error" => out.extend(frame.id.map(|id| Action::Ack { id, ok: false })),
        "reconnect" => {
            conn.token = frame.resume_token.or(conn.token.take());
            out.push(Action::Reconnect { delay_ms: frame.delay_ms.unwrap_or(0) });
        }
        _ => {}
    }
}

fn centrifugo(line: &str, conn: &mut Conn, out: &mut Vec<Action>) {
    if line == "{}" {
        out.push(Action::Send("{}".into())); // a server ping wants a pong
        return;
    }
    if line.starts_with(r#"{"push":{"channel""#) && line.contains(r#""pub":"#) {
        deliver(line, out);
        if let Some(offset) = line.split(r#""offset":"#).nth(1) {
            conn.offset = Some(offset.chars().take_while(char::is_ascii_digit).collect());
        }
        return;
    }
    let Ok(frame) = serde_json::from_str::<Value>(line) else { return };
    let id = frame["id"].as_u64().unwrap_or(0);
    if frame.get("error").is_some() {
        out.push(Action::Ack { id, ok: false });
    } else if frame.get("connect").is_some() {
        match conn.channel {
            None => ready(conn, out),
            Some(channel) => out.push(Action::Send(centrifugo_subscribe(conn, channel))),
        }
    } else if let Some(reply) = frame.get("subscribe") {
        for publication in reply["publications"].as_array().into_iter().flatten() {
            deliver(&publication["data"].to_string(), out);
        }
        conn.offset = Some(reply["offset"].as_u64().unwrap_or(0).to_string());
        conn.epoch = reply["epoch"].as_str().map(str::to_string);
        ready(conn, out);
    } else if frame.get("publish").is_some() {
        out.push(Action::Ack { id, ok: true });
    } else if let Some(publication) = frame["push"].get("pub") {
        deliver(&publication["data"].to_string(), out);
        conn.offset = publication["offset"].as_u64().map(|o| o.to_string());
    } else if frame["push"].get("disconnect").is_some() {
        out.push(Action::Reconnect { delay_ms: 0 });
    } else if let Some(code) = frame["push"]["unsub"]["code"].as_u64() {
        // What centrifuge-js does: codes from 2500 up (2500 is "insufficient state": the
        // node saw a hole in a channel's offsets, e.g. after a Redis failover) mean
        // "subscribe again", with recovery from where the client is.
        if let Some(channel) = conn.channel.filter(|_| code >= 2500) {
            out.push(Action::Send(centrifugo_subscribe(conn, channel)));
        }
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser): jitter without a random source.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A subscribe command; with `recover` from the last offset and epoch when there are any.
fn centrifugo_subscribe(conn: &Conn, channel: u32) -> String {
    let mut sub = json!({"channel": channel_name(channel)});
    if let (Some(offset), Some(epoch)) = (&conn.offset, &conn.epoch) {
        sub["recover"] = json!(true);
        sub["offset"] = json!(offset.parse::<u64>().unwrap_or(0));
        sub["epoch"] = json!(epoch);
    }
    json!({"id": SUBSCRIBE_ID, "subscribe": sub}).to_string()
}

fn socketio(text: &str, conn: &mut Conn, out: &mut Vec<Action>) {
    if let Some(event) = text.strip_prefix("42") {
        deliver(event, out);
        // With connection state recovery the last argument is the event's offset:
        // `["m","<payload>","<offset>"]`.
        if let Some(offset) = event.strip_suffix("\"]").and_then(|e| e.rsplit_once(",\"")).map(|(_, o)| o)
            && !offset.starts_with('P')
        {
            conn.offset = Some(offset.to_string());
        }
    } else if text == "2" {
        out.push(Action::Send("3".into()));
    } else if let Some(id) = text.strip_prefix("43") {
        let id = id.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
        if id == SUBSCRIBE_ID && conn.channel.is_some() {
            ready(conn, out);
        } else {
            out.push(Action::Ack { id, ok: true });
        }
    } else if let Some(connected) = text.strip_prefix("40") {
        let pid = serde_json::from_str::<Value>(connected).ok().and_then(|v| v["pid"].as_str().map(str::to_string));
        // Recovered when the server kept the private id we offered: rooms and missed
        // events come back without asking.
        let recovered = pid.is_some() && pid == conn.token && conn.offset.is_some();
        conn.token = pid;
        match conn.channel {
            Some(_) if recovered => ready(conn, out),
            Some(channel) => out.push(Action::Send(format!("42{SUBSCRIBE_ID}{}", json!(["sub", channel_name(channel)])))),
            None => ready(conn, out),
        }
    } else if text.starts_with('0') {
        let hello = match (&conn.token, &conn.offset) {
            (Some(pid), Some(offset)) => format!("40{}", json!({"pid": pid, "offset": offset})),
            _ => "40".to_string(),
        };
        out.push(Action::Send(hello));
    } else if text.starts_with("41") || text.starts_with("44") || text == "1" {
        out.push(Action::Reconnect { delay_ms: 0 });
    }
}

fn wsredis(text: &str, conn: &mut Conn, out: &mut Vec<Action>) {
    if let Some(id) = text.strip_prefix(r#"{"ack":"#) {
        let id = id.trim_end_matches('}').parse().unwrap_or(0);
        if id == SUBSCRIBE_ID && conn.channel.is_some() {
            ready(conn, out);
        } else {
            out.push(Action::Ack { id, ok: true });
        }
    } else if let Some(id) = text.strip_prefix(r#"{"nack":"#) {
        out.push(Action::Ack { id: id.trim_end_matches('}').parse().unwrap_or(0), ok: false });
    } else {
        deliver(text, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber() -> Conn {
        Conn { channel: Some(3), ..Conn::default() }
    }

    fn run(system: System, conn: &mut Conn, frame: &str) -> Vec<Action> {
        let mut out = Vec::new();
        system.on_frame(frame, conn, &mut out);
        out
    }

    #[test]
    fn socketfleet_resumes_with_token_and_offsets() {
        let mut conn = subscriber();
        let out = run(System::SocketFleet, &mut conn, r#"{"type":"welcome","session":"s","resumeToken":"t/1","resumed":false}"#);
        assert!(matches!(&out[..], [Action::Send(s)] if s.contains(r#""op":"subscribe""#)));
        let p = payload::encode(Stamp { channel: 3, seq: 1, sent_us: 5 }, 40);
        let out = run(
            System::SocketFleet,
            &mut conn,
            &format!(r#"{{"type":"message","channel":"bench:3","offset":"9-1","epoch":"e","data":"{p}"}}"#),
        );
        assert_eq!(out, vec![Action::Deliver(Stamp { channel: 3, seq: 1, sent_us: 5 })]);
        let url = System::SocketFleet.url("h:1", &conn);
        assert!(url.starts_with("ws://h:1/ws?resume=t%2F1&since="), "{url}");
        assert!(url.contains("9%2D1"), "{url}");
    }

    #[test]
    fn centrifugo_pongs_recovers_and_reads_batches() {
        let mut conn = subscriber();
        conn.offset = Some("4".into());
        conn.epoch = Some("ep".into());
        let out = run(System::Centrifugo, &mut conn, "{}\n{\"id\":1,\"connect\":{\"client\":\"c\"}}");
        assert_eq!(out[0], Action::Send("{}".into()));
        assert!(matches!(&out[1], Action::Send(s) if s.contains(r#""recover":true"#) && s.contains(r#""offset":4"#)));
        let p = payload::encode(Stamp { channel: 3, seq: 5, sent_us: 1 }, 30);
        let reply =
            format!(r#"{{"id":2,"subscribe":{{"recovered":true,"epoch":"ep","offset":5,"publications":[{{"data":"{p}","offset":5}}]}}}}"#);
        let out = run(System::Centrifugo, &mut conn, &reply);
        assert_eq!(out, vec![Action::Deliver(Stamp { channel: 3, seq: 5, sent_us: 1 }), Action::Ready]);
        let push = format!(r#"{{"push":{{"channel":"bench:3","pub":{{"data":"{p}","offset":17}}}}}}"#);
        run(System::Centrifugo, &mut conn, &push);
        assert_eq!(conn.offset.as_deref(), Some("17"));
        // Insufficient state: subscribe again, recovering from offset 17.
        let out =
            run(System::Centrifugo, &mut conn, r#"{"push":{"channel":"bench:3","unsub":{"code":2500,"reason":"insufficient state"}}}"#);
        assert!(matches!(&out[..], [Action::Send(s)] if s.contains(r#""recover":true"#) && s.contains(r#""offset":17"#)), "{out:?}");
        let out =
            run(System::Centrifugo, &mut conn, r#"{"push":{"channel":"bench:3","unsub":{"code":2000,"reason":"server unsubscribe"}}}"#);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn socketio_clients_back_off_like_socketio_client_and_the_others_retry_at_once() {
        let delays = |attempt| -> Vec<u64> { (0..200).map(|seed| System::SocketIo.reconnect_delay_ms(attempt, seed)).collect() };
        let first = delays(0);
        assert!(first.iter().all(|d| (500..=1500).contains(d)), "{first:?}");
        assert!(first.iter().any(|d| *d < 750) && first.iter().any(|d| *d > 1250), "jitter spreads: {first:?}");
        assert!(delays(1).iter().all(|d| (1000..=3000).contains(d)), "{:?}", delays(1));
        assert!(delays(9).iter().all(|d| *d == 5000), "capped at 5 s: {:?}", delays(9));
        assert_eq!(System::Centrifugo.reconnect_delay_ms(0, 7), 0);
        assert_eq!(System::SocketFleet.reconnect_delay_ms(0, 7), 0);
        assert_eq!(System::SocketFleet.reconnect_delay_ms(3, 7), 150);
        assert_eq!(System::WsRedis.reconnect_delay_ms(40, 7), 1000);
    }

    #[test]
    fn socketio_recovers_with_pid_and_offset() {
        let mut conn = subscriber();
        assert_eq!(run(System::SocketIo, &mut conn, r#"0{"sid":"a"}"#), vec![Action::Send("40".into())]);
        let out = run(System::SocketIo, &mut conn, r#"40{"sid":"b","pid":"p1"}"#);
        assert_eq!(out, vec![Action::Send(r#"422["sub","bench:3"]"#.into())]);
        assert_eq!(run(System::SocketIo, &mut conn, "432[]"), vec![Action::Ready]);
        run(System::SocketIo, &mut conn, r#"42["m","P3.1.2.xx","1700-0"]"#);
        assert_eq!(conn.offset.as_deref(), Some("1700-0"));
        conn.ready = false;
        let out = run(System::SocketIo, &mut conn, r#"0{"sid":"c"}"#);
        assert_eq!(out, vec![Action::Send(r#"40{"offset":"1700-0","pid":"p1"}"#.into())]);
        assert_eq!(run(System::SocketIo, &mut conn, r#"40{"sid":"d","pid":"p1"}"#), vec![Action::Ready]);
        assert_eq!(run(System::SocketIo, &mut conn, "2"), vec![Action::Send("3".into())]);
    }

    #[test]
    fn wsredis_acks_and_raw_payloads() {
        let mut conn = subscriber();
        assert_eq!(run(System::WsRedis, &mut conn, r#"{"ack":2}"#), vec![Action::Ready]);
        assert_eq!(run(System::WsRedis, &mut conn, r#"{"ack":11}"#), vec![Action::Ack { id: 11, ok: true }]);
        assert_eq!(run(System::WsRedis, &mut conn, "P3.4.5.x"), vec![Action::Deliver(Stamp { channel: 3, seq: 4, sent_us: 5 })]);
    }
}
