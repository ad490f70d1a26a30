//! L1: a real 6-node Redis Cluster and three sidecar processes; delivery, recovery, gaps,
//! presence and the app API, seen through real WebSocket clients.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use socketfleet_api::settings;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_pod_delivery_is_in_order_and_exactly_once_over_many_channels() {
    let cluster = RedisCluster::start();
    let sidecars = start_sidecars(3, &cluster_env(&cluster));
    let channels: Vec<String> = (0..24).map(|i| format!("room:{i}")).collect();
    let mut subscribers = Vec::new();
    for s in &sidecars {
        let mut c = Client::connect(&s.url()).await;
        for ch in &channels {
            c.subscribe(ch).await;
        }
        subscribers.push(c);
    }
    // Publish from every sidecar, interleaving channels.
    let mut publishers = Vec::new();
    for s in &sidecars {
        publishers.push(Client::connect(&s.url()).await);
    }
    let mut acked: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for round in 0..10 {
        for (i, ch) in channels.iter().enumerate() {
            let p = &mut publishers[(round + i) % 3];
            let r = p.publish(ch, json!({"round": round, "ch": ch})).await;
            assert_eq!(r["ok"], true, "publish: {r}");
            acked.entry(ch.clone()).or_default().push(seq_of(&r["offset"]));
        }
    }
    for (n, sub) in subscribers.iter_mut().enumerate() {
        let mut got: std::collections::HashMap<String, Vec<u64>> = Default::default();
        let total = channels.len() * 10;
        for _ in 0..total {
            let m = sub.next_of("message", STEP).await.unwrap_or_else(|| panic!("subscriber {n} stopped receiving"));
            assert_eq!(m["data"]["ch"], m["channel"], "payload belongs to its channel");
            got.entry(m["channel"].as_str().expect("channel").to_string()).or_default().push(seq_of(&m["offset"]));
        }
        assert_eq!(got, acked, "subscriber {n} received exactly the acked messages, in order");
        assert!(sub.next_of("message", Duration::from_millis(300)).await.is_none(), "no duplicates after the last one");
    }
    // One Redis subscription per channel per pod, not per client.
    for s in &sidecars {
        assert_eq!(s.metric("socketfleet_sidecar_channels"), channels.len() as f64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_elsewhere_recovers_exactly_what_it_missed() {
    let cluster = RedisCluster::start();
    let sidecars = start_sidecars(2, &cluster_env(&cluster));
    let mut publisher = Client::connect(&sidecars[1].url()).await;
    let mut client = Client::connect(&sidecars[0].url()).await;
    let sub = client.subscribe("news").await;
    let epoch = sub["epoch"].clone();
    for i in 0..5 {
        publisher.publish("news", json!(i)).await;
    }
    let mut last = json!(null);
    for i in 0..5 {
        let m = client.next_of("message", STEP).await.expect("live message");
        assert_eq!(m["data"], i);
        last = m["offset"].clone();
    }
    drop(client);
    for i in 5..15 {
        publisher.publish("news", json!(i)).await;
    }
    let mut client = Client::connect(&sidecars[1].url()).await;
    let r = client.call(json!({"op": "subscribe", "channel": "news", "since": {"offset": last, "epoch": epoch}})).await;
    assert_eq!(r["type"], "subscribed");
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["gap"], json!(null));
    for i in 5..15 {
        let m = client.next_of("message", STEP).await.expect("recovered message");
        assert_eq!(m["data"], i, "recovered in order");
    }
    publisher.publish("news", json!(15)).await;
    let m = client.next_of("message", STEP).await.expect("live after recovery");
    assert_eq!(m["data"], 15);
    assert!(client.next_of("message", Duration::from_millis(300)).await.is_none(), "nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_history_is_reported_as_an_exact_gap() {
    let cluster = RedisCluster::start();
    let mut env = cluster_env(&cluster);
    env.push((settings::ENV_HISTORY_SIZE, "10".into()));
    let sidecars = start_sidecars(1, &env);
    let mut c = Client::connect(&sidecars[0].url()).await;
    let first = c.publish("ticker", json!("first")).await;
    let since = json!({"offset": first["offset"], "epoch": first["epoch"]});
    let mut offsets = Vec::new();
    for i in 0..30 {
        offsets.push(c.publish("ticker", json!(i)).await["offset"].clone());
    }
    let r = c.call(json!({"op": "subscribe", "channel": "ticker", "since": since})).await;
    assert_eq!(r["recovered"], false);
    // 30 published after `since`, 10 retained: the 20 in between are missing, exactly.
    assert_eq!(r["gap"], json!({"from": first["offset"], "to": offsets[20], "missed": 20}), "{r}");
    for i in 20..30 {
        let m = c.next_of("message", STEP).await.expect("retained message");
        assert_eq!(m["data"], i);
    }
    // The history op reports the same gap.
    let h = c.call(json!({"op": "history", "channel": "ticker", "since": since, "limit": 5})).await;
    assert_eq!(h["gap"]["missed"], 20);
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(5));
    // A wrong epoch (stream recreated) is a gap too, of unknown size.
    let r = c.call(json!({"op": "subscribe", "channel": "other", "since": {"offset": "1-1", "epoch": "gone"}})).await;
    assert_eq!(r["recovered"], false);
    assert_eq!(r["gap"]["from"], "1-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_ephemeral_keys_and_the_app_publish_api() {
    let cluster = RedisCluster::start();
    let sidecars = start_sidecars(2, &cluster_env(&cluster));
    let mut a = Client::connect(&sidecars[0].url()).await;
    let mut b = Client::connect(&sidecars[1].url()).await;
    a.subscribe("lobby").await;
    b.subscribe("lobby").await;
    // a sees its own join first, then b's.
    let own = a.next_of("join", STEP).await.expect("a sees itself join");
    assert_eq!(own["client"], a.welcome["session"]);
    let join = a.next_of("join", STEP).await.expect("a sees b join");
    assert_eq!(join["client"], b.welcome["session"]);
    let p = a.call(json!({"op": "presence", "channel": "lobby"})).await;
    assert_eq!(p["type"], "presence");
    assert_eq!(p["members"].as_array().map(Vec::len), Some(2), "{p}");

    let r = a.call(json!({"op": "ephemeral", "channel": "lobby", "key": "typing", "data": true, "ttlMs": 3000})).await;
    assert_eq!(r["ok"], true, "{r}");
    let e = b.next_of("ephemeral", STEP).await.expect("b sees typing");
    assert_eq!((e["key"].as_str(), e["data"].as_bool()), (Some("typing"), Some(true)));

    let (status, body) = http_request(sidecars[1].api_port, "POST", "/publish", Some(r#"{"channel":"lobby","data":{"from":"app"}}"#));
    assert_eq!(status, 200, "{body}");
    for c in [&mut a, &mut b] {
        let m = c.next_of("message", STEP).await.expect("server-side publish delivered");
        assert_eq!(m["data"]["from"], "app");
    }
    let (status, _) = http_request(sidecars[1].api_port, "POST", "/publish", Some(r#"{"channel":"bad{name}","data":1}"#));
    assert_eq!(status, 400);

    // A client that says goodbye (a close frame) leaves at once.
    let _ = b.ws.close(None).await;
    let leave = a.next_of("leave", STEP).await.expect("a sees b leave");
    assert_eq!(leave["user"], join["user"]);
    let p = a.call(json!({"op": "presence", "channel": "lobby"})).await;
    assert_eq!(p["members"].as_array().map(Vec::len), Some(1), "{p}");
}

/// A connection lost without a close frame (a broken network, a reconnect storm) keeps its
/// presence member for one TTL: a session that resumes by then never leaves, one that does
/// not leaves then, with one `leave` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_leaves_presence_one_ttl_later_unless_its_session_resumes() {
    let cluster = RedisCluster::start();
    let mut env = cluster_env(&cluster);
    env.push((settings::ENV_PRESENCE_TTL, "2s".into()));
    // One resume key for both sidecars, as the operator's Secret gives every pod.
    env.push((settings::ENV_RESUME_KEY, "l1-presence-key-l1-presence-key-l1-presence".into()));
    let sidecars = start_sidecars(2, &env);
    let mut a = Client::connect(&sidecars[0].url()).await;
    a.subscribe("lobby").await;
    let mut comes_back = Client::connect(&sidecars[1].url()).await;
    comes_back.subscribe("lobby").await;
    let mut gone = Client::connect(&sidecars[1].url()).await;
    gone.subscribe("lobby").await;
    for _ in 0..3 {
        a.next_of("join", STEP).await.expect("a sees the three joins");
    }
    let (back_session, gone_session) = (comes_back.welcome["session"].clone(), gone.welcome["session"].clone());
    let token = comes_back.welcome["resumeToken"].as_str().expect("a resume token").to_string();
    // Both sockets end without a close frame; one session resumes on the other sidecar.
    // Not right after the joins: their stores would count as the last refresh. A second
    // later the last periodic refresh (every third of the TTL) ran up to 0.67 s before it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(comes_back);
    drop(gone);
    let lost_at = std::time::Instant::now();
    let lost_unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    // As a client library's reconnect delay would: the old sidecar has seen the loss and
    // stored the session's last checkpoint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resumed = Client::connect(&format!("{}?resume={token}", sidecars[0].url())).await;
    assert_eq!(resumed.welcome["session"], back_session, "{}", resumed.welcome);
    assert_eq!(resumed.welcome["subscriptions"], json!(["lobby"]), "{}", resumed.welcome);
    // The lost member is kept for one TTL from the loss, not from its last refresh (up to
    // a third of a TTL earlier): its expiry says so. `-c`: the key's node answers.
    let scores = redis_cli(cluster.any_port(), &["-c", "ZRANGE", "sf:{lobby}:presence", "0", "-1", "WITHSCORES"]);
    let lines: Vec<&str> = scores.lines().collect();
    let gone_id = gone_session.as_str().expect("a session id");
    let expiry: u64 = lines
        .chunks(2)
        .find(|pair| pair[0].starts_with(&format!("{gone_id}|")))
        .and_then(|pair| pair.get(1)?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("the lost member is stored: {scores}")) as u64;
    assert!(expiry + 150 >= lost_unix_ms + 2000, "expiry {} ms after the loss, not one TTL (2000 ms)", expiry as i64 - lost_unix_ms as i64);
    // Within the TTL nobody has left: no event, and both members are still listed, also
    // past the point where a refresh from before the loss would have run out (a refresh
    // runs every third of the TTL: 1.33 s to 2 s after it).
    assert_eq!(a.next_of("leave", Duration::from_millis(1000)).await, None, "no leave within the presence TTL");
    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(lost_at.elapsed())).await;
    let p = a.call(json!({"op": "presence", "channel": "lobby"})).await;
    assert_eq!(p["members"].as_array().map(Vec::len), Some(3), "listed until the leave, {:?} after the loss: {p}", lost_at.elapsed());
    // One TTL (and a margin) after the loss, the session that did not come back leaves.
    let leave = a.next_of("leave", STEP).await.expect("the lost session leaves after its TTL");
    assert_eq!(leave["client"], gone_session, "{leave}");
    // The resumed one never does (it is refreshed by the sidecar it resumed on).
    assert_eq!(a.next_of("leave", Duration::from_secs(4)).await, None, "a resumed session does not leave");
    let p = a.call(json!({"op": "presence", "channel": "lobby"})).await;
    let members: Vec<&Value> = p["members"].as_array().expect("members").iter().map(|m| &m["client"]).collect();
    assert_eq!(members.len(), 2, "{p}");
    assert!(members.contains(&&back_session) && !members.contains(&&gone_session), "{p}");
    drop(resumed);
}
