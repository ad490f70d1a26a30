//! L1 sessions: a session's subscriptions and the app's custom state survive a SIGKILL of
//! its pod; a client that comes back after the history window is told the exact gap,
//! whether the position comes from the session's checkpoint or from the client; and the
//! app API refuses bad session requests with clear errors. Real Redis Cluster, real
//! sidecar processes.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use socketfleet_api::settings;
use support::*;

const HISTORY: u64 = 10;
const CHECKPOINT: Duration = Duration::from_millis(200);

fn publish_via_api(sidecar: &Sidecar, channel: &str, i: u64) -> u64 {
    let (status, body) =
        http_request(sidecar.api_port, "POST", "/publish", Some(&json!({"channel": channel, "data": {"i": i}}).to_string()));
    assert_eq!(status, 200, "publish: {body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    seq_of(&v["offset"])
}

fn since_param(channel: &str, offset: &Value, epoch: &Value) -> String {
    let json = json!({ channel: {"offset": offset, "epoch": epoch} }).to_string();
    percent_encoding::utf8_percent_encode(&json, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_session_comes_back_with_its_state_and_an_exact_gap() {
    let cluster = RedisCluster::start();
    let mut env = cluster_env(&cluster);
    env.push((settings::ENV_HISTORY_SIZE, HISTORY.to_string()));
    env.push((settings::ENV_SESSION_CHECKPOINT, format!("{}ms", CHECKPOINT.as_millis())));
    env.push((settings::ENV_SESSION_POSITION_CHECKPOINT, format!("{}ms", CHECKPOINT.as_millis())));
    env.push((settings::ENV_RESUME_KEY, "l1-resume-key-l1-resume-key-l1-resume-key".into()));
    let mut sidecars = start_sidecars(2, &env);
    let ch = "sess:gap";

    // A client on sidecar 0 receives three messages; the app gives its session some state.
    let mut c = Client::connect(&sidecars[0].url()).await;
    let sid = c.welcome["session"].as_str().expect("session").to_string();
    let token = c.welcome["resumeToken"].as_str().expect("token").to_string();
    c.subscribe(ch).await;
    for i in 1..=3 {
        publish_via_api(&sidecars[1], ch, i);
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(c.next_of("message", STEP).await.expect("message"));
    }
    let last = got[2].clone();
    assert_eq!(seq_of(&last["offset"]), 3);
    let state = json!({"cart": ["apple", "pear"], "step": 2});
    let path = format!("/sessions/{sid}/state");
    let (status, body) = http_request(sidecars[0].api_port, "PUT", &path, Some(&state.to_string()));
    assert_eq!(status, 200, "set state: {body}");

    // The app API explains what it refuses.
    let cases = [
        (sidecars[1].api_port, "PUT", path.clone(), state.to_string(), 404, "not_connected"),
        (sidecars[0].api_port, "PUT", path.clone(), "{not json".to_string(), 400, "bad_request"),
        (sidecars[0].api_port, "PUT", "/sessions/xyz/state".to_string(), "{}".to_string(), 400, "bad_session"),
        (sidecars[0].api_port, "PUT", path.clone(), format!("\"{}\"", "x".repeat(20_000)), 413, "too_large"),
        (sidecars[0].api_port, "DELETE", path.clone(), String::new(), 405, "method_not_allowed"),
        (sidecars[0].api_port, "GET", "/nope".to_string(), String::new(), 404, "not_found"),
    ];
    for (port, method, path, body, want, code) in cases {
        let (status, answer) = http_request(port, method, &path, Some(&body));
        assert_eq!(status, want, "{method} {path}: {answer}");
        assert!(answer.contains(code), "{method} {path}: {answer}");
    }

    // Once a checkpoint ran, any pod reads the session, position included.
    let stored = |sidecar: &Sidecar| {
        let (status, body) = http_request(sidecar.api_port, "GET", &format!("/sessions/{sid}"), None);
        assert_eq!(status, 200, "get session: {body}");
        serde_json::from_str::<Value>(&body).expect("json")
    };
    wait_until("checkpoint reaches offset 3", Duration::from_secs(10), || {
        stored(&sidecars[1])["stored"]["channels"][ch]["offset"] == last["offset"]
    });
    let s = stored(&sidecars[1]);
    assert_eq!((s["connectedHere"].as_bool(), &s["stored"]["state"]), (Some(false), &state), "{s}");

    // SIGKILL its pod; 25 more messages push the client's position out of the history.
    sidecars[0].proc.kill();
    drop(c);
    let mut newest = 0;
    for i in 4..=28 {
        newest = publish_via_api(&sidecars[1], ch, i);
    }
    assert_eq!(newest, 28);

    // Resume without offsets: the checkpoint says where it was; the gap is exact.
    let mut back = Client::connect(&format!("{}?resume={token}", sidecars[1].url())).await;
    assert_eq!(back.welcome["resumed"], true);
    assert_eq!(back.welcome["session"], sid.as_str());
    assert_eq!(back.welcome["subscriptions"], json!([ch]));
    assert_eq!(back.welcome["state"], state);
    let sub = back.next_of("subscribed", STEP).await.expect("restored subscription");
    let first_kept = newest - HISTORY + 1;
    assert_eq!(sub["channel"], ch);
    assert_eq!(sub["gap"]["missed"], first_kept - 3 - 1, "exact gap: {sub}");
    assert_eq!(seq_of(&sub["gap"]["from"]), 3);
    assert_eq!(seq_of(&sub["gap"]["to"]), first_kept);
    for want in first_kept..=newest {
        let m = back.next_of("message", STEP).await.expect("retained message");
        assert_eq!(seq_of(&m["offset"]), want);
    }
    let epoch = sub["epoch"].clone();
    drop(back);

    // Resume again, this time reporting an older position itself: the client's offsets win
    // over the checkpoint (which is at 28 now) and the gap is exact again.
    tokio::time::sleep(CHECKPOINT * 3).await;
    let url = format!("{}?resume={token}&since={}", sidecars[1].url(), since_param(ch, &got[1]["offset"], &epoch));
    let mut again = Client::connect(&url).await;
    assert_eq!(again.welcome["resumed"], true);
    let sub = again.next_of("subscribed", STEP).await.expect("restored subscription");
    assert_eq!(sub["gap"]["missed"], first_kept - 2 - 1, "exact gap from the client's own offset: {sub}");

    // A bad `since` is refused at the handshake with the reason.
    let bad = format!("{}?resume={token}&since=%5B1%5D", sidecars[1].url());
    match Client::try_connect(&bad).await {
        Err(e) => assert!(e.to_string().contains("400"), "{e}"),
        Ok(_) => panic!("a malformed since was accepted"),
    }
}

/// Issue 17, item 2: after Redis lost the session documents (its node restarted empty), a
/// session came back resumed with none of its subscriptions until its next change or the
/// half-window TTL refresh rewrote it. A pod now writes every session again right after a
/// Redis connection dropped, so a resume elsewhere finds them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lost_with_a_restarted_redis_are_written_again_promptly() {
    let mut redis = RedisStandalone::start();
    let env = vec![
        (settings::ENV_AUTH, "none".to_string()),
        (settings::ENV_REDIS_ADDRS, redis.addr()),
        (settings::ENV_SESSION_CHECKPOINT, "200ms".into()),
        (settings::ENV_SESSION_POSITION_CHECKPOINT, "60s".into()),
        (settings::ENV_RESUME_KEY, "l1-resume-key-l1-resume-key-l1-resume-key".into()),
    ];
    let sidecars = start_sidecars(2, &env);
    let mut c = Client::connect(&sidecars[0].url()).await;
    let sid = c.welcome["session"].as_str().expect("session").to_string();
    let token = c.welcome["resumeToken"].as_str().expect("token").to_string();
    let channels = ["lost:a", "lost:b", "lost:c"];
    for ch in channels {
        c.subscribe(ch).await;
    }
    let stored_channels = |sidecar: &Sidecar| -> usize {
        let (status, body) = http_request(sidecar.api_port, "GET", &format!("/sessions/{sid}"), None);
        if status != 200 {
            return 0;
        }
        serde_json::from_str::<Value>(&body).ok().and_then(|v| v["stored"]["channels"].as_object().map(|m| m.len())).unwrap_or(0)
    };
    wait_until("the session is stored", Duration::from_secs(10), || stored_channels(&sidecars[1]) == 3);
    redis.restart_empty();
    let lost_at = std::time::Instant::now();
    wait_until("the session is written again", Duration::from_secs(10), || stored_channels(&sidecars[1]) == 3);
    let rewritten = lost_at.elapsed();
    let resumed = Client::connect(&format!("{}?resume={token}", sidecars[1].url())).await;
    assert_eq!(resumed.welcome["resumed"], true, "{}", resumed.welcome);
    assert_eq!(resumed.welcome["subscriptions"], json!(channels), "{}", resumed.welcome);
    eprintln!("MEASURE a session lost with Redis was stored again {:.1}s after Redis restarted empty", rewritten.as_secs_f64());
}
