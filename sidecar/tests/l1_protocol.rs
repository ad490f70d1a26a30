//! L1 protocol edge: bad input of every kind, authentication and authorisation, slow
//! consumers, configuration errors, and a third-party client, against real processes.

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use socketfleet_api::settings;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const SECRET: &str = "l1-jwt-secret-l1-jwt-secret-l1-jwt-secret";

fn standalone_env(redis: &RedisStandalone) -> Vec<(&'static str, String)> {
    vec![(settings::ENV_AUTH, "none".into()), (settings::ENV_REDIS_ADDRS, redis.addr()), (settings::ENV_MAX_FRAME_BYTES, "4096".into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_gets_an_error_frame_and_nothing_breaks() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let s = &sidecars[0];
    let mut c = Client::connect(&s.url()).await;
    let cases: Vec<(&str, &str)> = vec![
        ("{not json", "bad_json"),
        ("[1,2,3]", "bad_request"),
        ("42", "bad_request"),
        (r#"{"id":1}"#, "bad_request"),
        (r#"{"op":"teleport","id":2}"#, "unknown_op"),
        (r#"{"op":5,"id":3}"#, "bad_request"),
        (r#"{"op":"subscribe","id":4}"#, "bad_request"),
        (r#"{"op":"subscribe","channel":["x"],"id":5}"#, "bad_request"),
        (r#"{"op":"subscribe","channel":"has space","id":6}"#, "bad_channel"),
        (r#"{"op":"subscribe","channel":"a{b}","id":7}"#, "bad_channel"),
        (r#"{"op":"subscribe","channel":"ok","since":{"offset":"nope","epoch":"e"},"id":8}"#, "bad_request"),
        (r#"{"op":"publish","channel":"ok","id":9}"#, "bad_request"),
        (r#"{"op":"unsubscribe","channel":"never","id":10}"#, "not_subscribed"),
        (r#"{"op":"history","channel":"ok","limit":0,"id":11}"#, "bad_request"),
        (r#"{"op":"ephemeral","channel":"ok","key":"k","data":1,"ttlMs":999999,"id":12}"#, "bad_request"),
        (r#"{"op":"ping","id":"seven"}"#, "bad_request"),
        // Issue 17, item 7: offsets no server issues (they answered `unavailable`, or a gap
        // of `missed: 1` from wrapped arithmetic).
        (
            r#"{"op":"subscribe","channel":"ok","since":{"offset":"18446744073709551615-18446744073709551615","epoch":"e"},"id":13}"#,
            "bad_request",
        ),
        (r#"{"op":"subscribe","channel":"ok","since":{"offset":"1-18446744073709551615","epoch":"e"},"id":14}"#, "bad_request"),
        (r#"{"op":"history","channel":"ok","since":{"offset":"18446744073709551615-0","epoch":"e"},"id":15}"#, "bad_request"),
    ];
    for (input, code) in &cases {
        c.send_raw(Message::Text((*input).into())).await;
        let f = c.next_of("error", STEP).await.unwrap_or_else(|| panic!("no error frame for {input}"));
        assert_eq!(f["code"], *code, "input {input}: {f}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
        // The connection stays usable.
        assert_eq!(c.call(json!({"op": "ping"})).await["ok"], true, "after {input}");
    }
    // An id is echoed on errors when it could be read.
    c.send_raw(Message::Text(r#"{"op":"teleport","id":77}"#.into())).await;
    assert_eq!(c.next_of("error", STEP).await.expect("error")["id"], 77);
    // Double subscribe.
    c.subscribe("dup").await;
    assert_eq!(c.call(json!({"op": "subscribe", "channel": "dup"})).await["code"], "already_subscribed");
    // Binary frames are refused but the connection stays.
    c.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(c.next_of("error", STEP).await.expect("error")["code"], "binary_unsupported");
    assert_eq!(c.call(json!({"op": "ping"})).await["ok"], true);
    // An oversized frame is answered, then the connection is closed with 1009.
    c.send_raw(Message::Text("x".repeat(8192).into())).await;
    assert_eq!(c.next_of("error", STEP).await.expect("error")["code"], "too_large");
    let closed_with = c.close_code().await;
    assert_eq!(closed_with, Some(CloseCode::Size));
    // The process is healthy and nothing leaked: connections drop back to zero.
    drop(c);
    assert_eq!(s.http_get(s.admin_port, "/live").0, 200);
    wait_until("connections gauge back to 0", Duration::from_secs(10), || s.metric("socketfleet_sidecar_connections") == 0.0);
    assert!(s.metric("socketfleet_sidecar_protocol_errors_total") >= cases.len() as f64);
    let mut fresh = Client::connect(&s.url()).await;
    assert_eq!(fresh.call(json!({"op": "ping"})).await["ok"], true);
}

/// Issue 17, item 1: a `since` past the stream's end (same epoch), sent by a channel's first
/// subscriber on a pod, used to become the pod's position and silence the channel for
/// every subscriber there. It is now a subscription from the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_past_the_streams_end_starts_at_the_end_and_silences_no_one() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let url = sidecars[0].url();
    let ch = "ahead";
    let mut publisher = Client::connect(&url).await;
    let mut last = Value::Null;
    for i in 0..3 {
        last = publisher.publish(ch, json!(i)).await;
        assert_eq!(last["ok"], true, "{last}");
    }
    let offset = last["offset"].as_str().expect("offset").to_string();
    let (ms, seq) = offset.split_once('-').expect("<ms>-<seq>");
    let forged = format!("{ms}-{}", seq.parse::<u64>().expect("seq") + 1000);
    let mut forger = Client::connect(&url).await;
    let r = forger.call(json!({"op": "subscribe", "channel": ch, "since": {"offset": forged, "epoch": last["epoch"]}})).await;
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(r["recovered"], false, "nothing was recovered: {r}");
    assert_eq!(r["offset"], offset.as_str(), "it starts at the stream's end: {r}");
    assert!(r["gap"].is_null(), "nothing the stream holds is missing: {r}");
    let mut other = Client::connect(&url).await;
    other.subscribe(ch).await;
    for i in 3..13 {
        assert_eq!(publisher.publish(ch, json!(i)).await["ok"], true);
    }
    for (who, client) in [("the forger", &mut forger), ("another subscriber", &mut other)] {
        let mut seqs = Vec::new();
        while seqs.len() < 10 {
            let Some(m) = client.next_of("message", STEP).await else { break };
            seqs.push(seq_of(&m["offset"]));
        }
        assert_eq!(seqs, (4..=13).collect::<Vec<u64>>(), "{who} receives every later publication once");
    }
}

/// Issue 17, item 3: `/ready` follows Redis in standalone mode too (it said 200 with Redis
/// gone: the standalone topology never contacted it), and a publish Redis never received
/// is answered `unavailable`, which now always means "not published".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_readiness_follows_redis_and_a_publish_never_sent_is_not_published() {
    let mut redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let s = &sidecars[0];
    let mut c = Client::connect(&s.url()).await;
    assert_eq!(c.publish("ready", json!(1)).await["ok"], true);
    redis.proc.kill();
    wait_until("not ready without Redis", Duration::from_secs(10), || s.http_get(s.admin_port, "/ready").0 == 503);
    assert!(s.http_get(s.admin_port, "/ready").1.contains("redis"), "the reason names Redis");
    let r = c.publish("ready", json!(2)).await;
    assert_eq!(r["code"], "unavailable", "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.starts_with("not published")), "{r}");
}

/// Issue 17, item 4: a publish whose answer never came (primary frozen with SIGSTOP) is
/// `unconfirmed`, not `unavailable` (it may be published when Redis wakes). A publish id
/// makes the retry safe: a `pid` used twice is stored once, the second answer `repeated`
/// with the first offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_publish_is_unconfirmed_and_a_retry_with_its_pid_is_stored_once() {
    let redis = RedisStandalone::start();
    let mut env = standalone_env(&redis);
    env.push((settings::ENV_REDIS_TIMEOUT, "1s".into()));
    let sidecars = start_sidecars(1, &env);
    let url = sidecars[0].url();
    let ch = "once";
    let mut subscriber = Client::connect(&url).await;
    subscriber.subscribe(ch).await;
    let mut publisher = Client::connect(&url).await;
    // A publish id used twice is stored once.
    let first = publisher.call(json!({"op": "publish", "channel": ch, "data": "first", "pid": "p-0"})).await;
    let again = publisher.call(json!({"op": "publish", "channel": ch, "data": "first", "pid": "p-0"})).await;
    assert_eq!(
        (again["ok"].clone(), again["repeated"].clone(), again["offset"].clone()),
        (json!(true), json!(true), first["offset"].clone()),
        "{again}"
    );
    // Frozen: the answer cannot say "not published".
    let pid = redis.proc.child.id();
    signal(pid, "-STOP");
    let r = publisher.call(json!({"op": "publish", "channel": ch, "data": "frozen", "pid": "p-1"})).await;
    signal(pid, "-CONT");
    assert_eq!(r["code"], "unconfirmed", "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("pid")), "the answer says how to retry: {r}");
    // Whether the frozen one reached Redis or not, its retry leaves exactly one copy.
    let retried = publisher.call(json!({"op": "publish", "channel": ch, "data": "frozen", "pid": "p-1"})).await;
    assert_eq!(retried["ok"], true, "{retried}");
    let next = publisher.call(json!({"op": "publish", "channel": ch, "data": "next", "pid": "p-2"})).await;
    assert_eq!(seq_of(&next["offset"]), seq_of(&retried["offset"]) + 1, "one offset per publish id: {next}");
    let mut got = Vec::new();
    while let Some(m) = subscriber.next_of("message", Duration::from_secs(5)).await {
        got.push(m["data"].as_str().unwrap_or_default().to_string());
        if got.len() == 3 {
            break;
        }
    }
    assert!(subscriber.next_of("message", Duration::from_secs(1)).await.is_none(), "nothing more: {got:?}");
    assert_eq!(got, ["first", "frozen", "next"]);
    assert_eq!(publisher.call(json!({"op": "publish", "channel": ch, "data": 1, "pid": "has space"})).await["code"], "bad_request");
}

/// Issue 17, item 7: a text frame that is not UTF-8 is closed with 1007 (RFC 6455 7.4.1),
/// not 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let mut c = Client::connect(&sidecars[0].url()).await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    c.send_raw(Message::Frame(bad)).await;
    let closed_with = c.close_code().await;
    assert_eq!(closed_with, Some(CloseCode::Invalid));
}

/// A client may send its first frames right behind the upgrade request, before the 101:
/// they arrive in the same read as the request, and the connection must still see them.
/// Both a one-worker sidecar (direct writes on) and a two-worker one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_behind_the_upgrade_request_are_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(2, &standalone_env(&redis));
    for s in &sidecars {
        let mut bytes = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .to_vec();
        for id in 1..=2 {
            // A masked text frame, as a client must send it.
            let payload = json!({"op": "subscribe", "channel": format!("early-{id}"), "id": id}).to_string().into_bytes();
            let mask = [0x12, 0x34, 0x56, 0x78];
            bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
            bytes.extend_from_slice(&mask);
            bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.ws_port)).await.expect("connect");
        tcp.write_all(&bytes).await.expect("one write: request and frames");
        // The response head, a byte at a time so that no frame is read with it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.expect("response head"));
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
        let mut answered = Vec::new();
        while answered.len() < 2 {
            let frame = tokio::time::timeout(STEP, ws.next()).await.expect("answers come").expect("open").expect("a frame");
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "subscribed" {
                answered.push(v["id"].clone());
            }
        }
        assert_eq!(answered, vec![json!(1), json!(2)], "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_level_refusals_are_explicit() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let s = &sidecars[0];
    assert_eq!(http_request(s.ws_port, "GET", "/ws", None).0, 426, "plain GET without upgrade");
    assert_eq!(http_request(s.ws_port, "GET", "/elsewhere", None).0, 404);
    let err = tokio_tungstenite::connect_async(format!("{}?v=2", s.url())).await.expect_err("v=2 unsupported");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(s.http_get(s.admin_port, "/ready").0, 200);
    assert!(s.http_get(s.admin_port, "/metrics").1.contains("socketfleet_sidecar_connections"));
}

/// HS256 tokens signed with [`SECRET`], standalone Redis.
fn jwt_env(redis: &RedisStandalone) -> Vec<(&'static str, String)> {
    vec![(settings::ENV_AUTH, "hs256".into()), (settings::ENV_JWT_SECRET, SECRET.into()), (settings::ENV_REDIS_ADDRS, redis.addr())]
}

fn token(claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_auth_refuses_bad_tokens_and_unauthorised_channels() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &jwt_env(&redis));
    let url = sidecars[0].url();
    let exp = 4_000_000_000u64;
    for bad in [
        url.clone(),
        format!("{url}?token=garbage"),
        format!("{url}?token={}", token(json!({"sub": "old", "exp": 1_000_000}))),
        format!(
            "{url}?token={}",
            encode(
                &Header::new(Algorithm::HS256),
                &json!({"sub": "eve", "exp": exp}),
                &EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx")
            )
            .expect("t")
        ),
    ] {
        let err = tokio_tungstenite::connect_async(&bad).await.expect_err("refused");
        assert!(err.to_string().contains("401"), "{bad}: {err}");
    }
    let reader = token(json!({"sub": "ada", "exp": exp, "channels": {"subscribe": ["room:*"], "publish": []}}));
    let writer = token(json!({"sub": "bob", "exp": exp, "channels": {"subscribe": ["room:*", "secret"], "publish": ["room:*", "secret"]}}));
    let mut ada = Client::connect(&format!("{url}?token={reader}")).await;
    let mut bob = Client::connect(&format!("{url}?token={writer}")).await;
    assert_eq!(ada.call(json!({"op": "subscribe", "channel": "secret"})).await["code"], "forbidden");
    assert_eq!(ada.call(json!({"op": "history", "channel": "secret"})).await["code"], "forbidden");
    assert_eq!(ada.call(json!({"op": "presence", "channel": "secret"})).await["code"], "forbidden");
    assert_eq!(ada.call(json!({"op": "publish", "channel": "room:1", "data": 1})).await["code"], "forbidden");
    ada.subscribe("room:1").await;
    bob.subscribe("secret").await;
    assert_eq!(bob.publish("secret", json!("classified")).await["ok"], true);
    assert_eq!(bob.publish("room:1", json!("hello ada")).await["ok"], true);
    let m = ada.next_of("message", STEP).await.expect("ada gets room:1");
    assert_eq!(m["data"], "hello ada");
    assert!(ada.next_of("message", Duration::from_millis(500)).await.is_none(), "ada never sees the secret channel");
    let who = bob.call(json!({"op": "presence", "channel": "room:1"})).await;
    assert_eq!(who["members"][0]["user"], "ada");
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// The `<expires>` field of a resume token `v1.<session>.<user>.<expires>.<mac>`.
fn resume_token_expiry(token: &Value) -> u64 {
    token.as_str().and_then(|t| t.split('.').nth(3)).and_then(|e| e.parse().ok()).expect("a v1 resume token")
}

/// Issue 17, item 6: a connection does not outlive its JWT. It is warned ahead of `exp`,
/// closed with 4001 at `exp` (plus the 5 s leeway accepted at connect) unless it refreshed
/// the token in band, and no resume token it is given outlives the identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_with_its_token_unless_refreshed_and_resume_tokens_never_outlive_it() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &jwt_env(&redis));
    let url = sidecars[0].url();
    let grants = json!({"subscribe": ["room:*", "secret"], "publish": ["room:*"]});
    let short = now_secs() + 2;
    let mut leaving = Client::connect(&format!("{url}?token={}", token(json!({"sub": "ada", "exp": short, "channels": grants})))).await;
    let mut staying = Client::connect(&format!("{url}?token={}", token(json!({"sub": "bob", "exp": short, "channels": grants})))).await;
    for c in [&leaving, &staying] {
        assert!(resume_token_expiry(&c.welcome["resumeToken"]) <= short, "resume token outlives the JWT: {}", c.welcome);
    }
    for c in [&mut leaving, &mut staying] {
        let warning = c.next_of("expiring", STEP).await.expect("a warning ahead of expiry");
        assert_eq!(warning["expiresAt"], short, "{warning}");
    }
    staying.subscribe("room:1").await;
    staying.subscribe("secret").await;
    // Refresh: wrong user and garbage are refused; the right one narrows the grants.
    let eve = token(json!({"sub": "eve", "exp": short + 3600, "channels": grants}));
    assert_eq!(staying.call(json!({"op": "refresh", "token": eve})).await["code"], "forbidden");
    assert_eq!(staying.call(json!({"op": "refresh", "token": "garbage"})).await["code"], "forbidden");
    assert_eq!(staying.call(json!({"op": "refresh"})).await["code"], "bad_request");
    let later = now_secs() + 3600;
    let narrower = token(json!({"sub": "bob", "exp": later, "channels": {"subscribe": ["room:*"], "publish": ["room:*"]}}));
    let r = staying.call(json!({"op": "refresh", "token": narrower})).await;
    assert_eq!(r["expiresAt"], later, "{r}");
    let revoked = staying.next_of("error", STEP).await.expect("the channel no longer granted is ended");
    assert_eq!((revoked["code"].as_str(), revoked["channel"].as_str()), (Some("forbidden"), Some("secret")), "{revoked}");
    assert_eq!(staying.call(json!({"op": "unsubscribe", "channel": "secret"})).await["code"], "not_subscribed");
    // The old token's end passes: the one that did not refresh is told and closed with 4001.
    let error = leaving.next_of("error", Duration::from_secs(20)).await.expect("told its token expired");
    assert_eq!(error["code"], "token_expired", "{error}");
    let closed_with = leaving.close_code().await.map(u16::from);
    assert_eq!(closed_with, Some(4001));
    // The refreshed one goes on, and its next resume token follows the new expiry.
    assert!(now_secs() >= short + 5, "past the old token's end");
    assert_eq!(staying.call(json!({"op": "ping"})).await["ok"], true);
    assert_eq!(staying.publish("room:1", json!("still here")).await["ok"], true);
    assert_eq!(staying.next_of("message", STEP).await.expect("live")["data"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_with_a_reconnect_hint_and_others_keep_receiving() {
    let redis = RedisStandalone::start();
    let env = vec![
        (settings::ENV_AUTH, "none".to_string()),
        (settings::ENV_REDIS_ADDRS, redis.addr()),
        (settings::ENV_SEND_QUEUE, "16".to_string()),
        (settings::ENV_MAX_FRAME_BYTES, "65536".to_string()),
    ];
    let sidecars = start_sidecars(1, &env);
    let s = &sidecars[0];
    let mut slow = Client::connect_small_buffer(&s.url(), s.ws_port).await;
    slow.subscribe("firehose").await;
    let mut fast = Client::connect(&s.url()).await;
    fast.subscribe("firehose").await;
    let mut publisher = Client::connect(&s.url()).await;
    let payload = "y".repeat(60_000);
    let mut sent = 0;
    // The slow client reads nothing; socket buffers fill, then its queue of 16 overflows.
    for i in 0..2000 {
        assert_eq!(publisher.publish("firehose", json!({"i": i, "pad": payload})).await["ok"], true);
        sent += 1;
        let _ = fast.next_of("message", STEP).await.expect("fast client keeps up");
        if s.metric("socketfleet_sidecar_slow_consumer_disconnects_total") >= 1.0 {
            break;
        }
    }
    assert!(s.metric("socketfleet_sidecar_slow_consumer_disconnects_total") >= 1.0, "slow client disconnected after {sent} messages");
    let mut hint = None;
    for _ in 0..1000 {
        match slow.next_frame(STEP).await {
            Some(f) if f["type"] == "reconnect" => {
                hint = Some(f);
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert_eq!(hint.expect("a reconnect hint before the close")["reason"], "slow_consumer");
    assert_eq!(publisher.publish("firehose", json!({"after": true})).await["ok"], true);
    let m = fast.next_of("message", STEP).await.expect("fast client unaffected");
    assert_eq!(m["data"]["after"], true);
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_socketfleet-sidecar"))
        .env_clear()
        .env(settings::ENV_WS_ADDR, "nowhere")
        .env(settings::ENV_REDIS_MODE, "clusterr")
        .env(settings::ENV_HISTORY_TTL, "forever")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for var in [settings::ENV_WS_ADDR, settings::ENV_REDIS_MODE, settings::ENV_HISTORY_TTL, settings::ENV_AUTH] {
        assert!(err.contains(var), "{var} not reported:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_python_client_interoperates() {
    let redis = RedisStandalone::start();
    let sidecars = start_sidecars(1, &standalone_env(&redis));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop_client.py");
    let out = tokio::process::Command::new("python3").arg(script).arg(sidecars[0].url()).output().await.expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("OK"), "python client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_resume_tokens_are_rejected_with_a_fresh_session() {
    use socketfleet_sidecar::edge::resume_token::ResumeKeys;
    const KEY: &str = "l1-resume-key-l1-resume-key-l1-resume-key";
    let redis = RedisStandalone::start();
    let env = vec![
        (settings::ENV_AUTH, "hs256".to_string()),
        (settings::ENV_JWT_SECRET, SECRET.to_string()),
        (settings::ENV_REDIS_ADDRS, redis.addr()),
        (settings::ENV_RESUME_KEY, KEY.to_string()),
    ];
    let sidecars = start_sidecars(2, &env);
    let exp = 4_000_000_000u64;
    let ada = token(json!({"sub": "ada", "exp": exp, "channels": {"subscribe": ["*"], "publish": ["*"]}}));
    let bob = token(json!({"sub": "bob", "exp": exp, "channels": {"subscribe": ["*"], "publish": ["*"]}}));
    let first = Client::connect(&format!("{}?token={ada}", sidecars[0].url())).await;
    let session = first.welcome["session"].as_str().expect("session").to_string();
    let resume = first.welcome["resumeToken"].as_str().expect("a resume token").to_string();

    // The genuine token resumes the session on the other sidecar.
    let back = Client::connect(&format!("{}?token={ada}&resume={resume}", sidecars[1].url())).await;
    assert_eq!(back.welcome["resumed"], true);
    assert_eq!(back.welcome["session"], session.as_str());
    // So it does with both tokens percent-encoded in full (`.` as `%2E`, `-` as `%2D`): a
    // URL encoder may escape every character but letters and digits.
    let every = |t: &str| {
        t.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect::<String>()
    };
    let (ada_encoded, resume_encoded) = (every(&ada), every(&resume));
    assert!(resume_encoded.contains("%2E"), "{resume_encoded}");
    let back = Client::connect(&format!("{}?token={ada_encoded}&resume={resume_encoded}", sidecars[0].url())).await;
    assert_eq!(back.welcome["resumed"], true, "{}", back.welcome);
    assert_eq!(back.welcome["session"], session.as_str());

    let keys = ResumeKeys::new(KEY.as_bytes().to_vec(), None);
    let cases = [
        ("forged", resume.replacen(&session[..4], "ffff", 1)),
        ("garbage", "not-a-token".to_string()),
        ("expired", keys.issue(&session, "ada", 1_000)),
        ("another key", ResumeKeys::new(b"some-other-key-some-other-key-xx".to_vec(), None).issue(&session, "ada", exp)),
    ];
    for (what, t) in cases {
        let mut c = Client::connect(&format!("{}?token={ada}&resume={t}", sidecars[1].url())).await;
        assert_eq!(c.welcome["resumed"], false, "{what}");
        assert_ne!(c.welcome["session"], session.as_str(), "{what}: a fresh session");
        assert_eq!(c.next_of("error", STEP).await.expect("error")["code"], "resume_rejected", "{what}");
    }
    // Bob cannot take over Ada's session with her token.
    let mut eve = Client::connect(&format!("{}?token={bob}&resume={resume}", sidecars[1].url())).await;
    assert_eq!(eve.welcome["resumed"], false);
    assert_ne!(eve.welcome["session"], session.as_str());
    let e = eve.next_of("error", STEP).await.expect("error");
    assert_eq!(e["code"], "resume_rejected");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("another user")), "{e}");
}

/// The `message` frame a client receives is rendered by the publish script in Lua (once
/// per publication, sent as is to every subscriber); it must be byte for byte the frame
/// `protocol::message_frame` renders in Rust (recovery and backfill send those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lua_rendered_message_frame_is_the_rust_one() {
    use futures_util::{SinkExt, StreamExt};
    let redis = RedisStandalone::start();
    let env = standalone_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Sidecar::start("frames", &env);
    let (mut ws, _) = tokio_tungstenite::connect_async(s.url()).await.expect("connect");
    let channel = "room:frames/1";
    let data = json!({"text": "hé \"quoted\"", "n": [1, 2.5, null], "nested": {"ok": true}});
    for frame in
        [json!({"op": "subscribe", "channel": channel, "id": 1}), json!({"op": "publish", "channel": channel, "data": data, "id": 2})]
    {
        ws.send(Message::text(frame.to_string())).await.expect("send");
    }
    let raw = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("\"type\":\"message\"") => return t.as_str().to_string(),
                Some(Ok(_)) => continue,
                other => panic!("the connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a message frame");
    let parsed: Value = serde_json::from_str(&raw).expect("JSON");
    let offset: socketfleet_sidecar::delivery::offset::Offset = parsed["offset"].as_str().and_then(|o| o.parse().ok()).expect("an offset");
    let rust =
        socketfleet_sidecar::edge::protocol::message_frame(channel, offset, parsed["epoch"].as_str().expect("epoch"), &data.to_string());
    assert_eq!(raw, rust, "Lua and Rust render the same frame");
}

/// Durations that used to panic the sidecar (exit 101) at start, on the first drain, on every
/// connection or every Redis command are refused at start with exit 64 and their range.
#[test]
fn huge_durations_exit_64_with_their_range_not_101() {
    for var in [
        settings::ENV_DRAIN_SPREAD,
        settings::ENV_SESSION_CHECKPOINT,
        settings::ENV_DRAIN_TIMEOUT,
        settings::ENV_HANDSHAKE_TIMEOUT,
        settings::ENV_REDIS_RETRY_BUDGET,
        settings::ENV_TOPOLOGY_POLL,
        settings::ENV_HISTORY_TTL,
    ] {
        for huge in ["18446744073709551615s", "9223372036854775s"] {
            let out = Command::new(env!("CARGO_BIN_EXE_socketfleet-sidecar"))
                .env_clear()
                .env(settings::ENV_AUTH, "none")
                .env(var, huge)
                .output()
                .expect("runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{var}={huge}: {err}");
            assert!(err.contains(var) && (err.contains("allowed range") || err.contains("is not a duration")), "{var}={huge}: {err}");
        }
    }
}

/// Keepalive: every connection is pinged once per `SF_PING_INTERVAL` (one task pings the
/// pod's connections in slices of the interval, no timer per connection), pings interleave
/// with messages without corrupting them, and a client that only answers pings outlives
/// the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_is_pinged_each_interval_and_a_client_answering_pings_stays() {
    let redis = RedisStandalone::start();
    let mut env = standalone_env(&redis);
    env.extend([(settings::ENV_PING_INTERVAL, "1s".to_string()), (settings::ENV_IDLE_TIMEOUT, "2s".to_string())]);
    // Two sidecars: the first on one worker thread, the second on one per CPU.
    let sidecars = start_sidecars(2, &env);
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(&sidecars[i % 2].url()).await;
        c.subscribe("keepalive").await;
        clients.push(c);
    }
    // A ping falling due while a connection opens comes after its welcome, never before.
    // Twenty sessions resume while Redis holds writes (CLIENT PAUSE): each opening waits on
    // its session claim for 600 ms, across about ten ping slices.
    let mut tokens = Vec::new();
    for i in 0..20 {
        let c = Client::connect(&sidecars[i % 2].url()).await;
        tokens.push((i % 2, c.welcome["resumeToken"].as_str().expect("a resume token").to_string()));
    }
    redis_cli(redis.port, &["CLIENT", "PAUSE", "600", "WRITE"]);
    let openings: Vec<_> = tokens
        .into_iter()
        .map(|(k, token)| {
            let url = format!("{}?resume={token}", sidecars[k].url());
            tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
                tokio::time::timeout(STEP, futures_util::StreamExt::next(&mut ws)).await
            })
        })
        .collect();
    for opening in openings {
        match opening.await.expect("opening") {
            Ok(Some(Ok(Message::Text(t)))) => assert!(t.contains("\"welcome\""), "first frame: {t}"),
            other => panic!("the first frame is the welcome, got {other:?}"),
        }
    }
    let mut publisher = Client::connect(&sidecars[0].url()).await;
    // 6 s of listening: three idle timeouts long, six ping intervals.
    let listen = Duration::from_secs(6);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let (mut pings, mut messages) = (0, Vec::new());
                let until = tokio::time::Instant::now() + listen;
                // Reading answers each ping with a pong (tungstenite does it when it reads).
                while let Ok(next) = tokio::time::timeout_at(until, futures_util::StreamExt::next(&mut c.ws)).await {
                    match next {
                        Some(Ok(Message::Ping(_))) => pings += 1,
                        Some(Ok(Message::Text(t))) => {
                            let frame: Value = serde_json::from_str(&t).expect("JSON");
                            if frame["type"] == "message" {
                                messages.push(frame["data"]["n"].clone());
                            }
                        }
                        other => panic!("the connection ended while answering pings: {other:?}"),
                    }
                }
                (pings, messages)
            })
        })
        .collect();
    for n in 0..20 {
        assert_eq!(publisher.publish("keepalive", json!({"n": n})).await["ok"], true);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for reader in readers {
        let (pings, messages) = reader.await.expect("reader");
        assert!((4..=8).contains(&pings), "one ping per 1 s interval over 6 s, got {pings}");
        assert_eq!(messages, (0..20).map(|n| json!(n)).collect::<Vec<_>>(), "every message, in order, between the pings");
    }
}
