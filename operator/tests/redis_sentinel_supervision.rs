//! The operator's Sentinel supervision (`redis_sentinel::supervise`) against a real Sentinel
//! set started by the fleet's entrypoint: it names the primary the Sentinels agree on, gives
//! a Sentinel that lost the master its master back (with the password), moves the primary
//! off a pod a scale-in removes through Sentinel's own failover, and resets Sentinels that
//! remember removed pods, one per pass, without ever choosing a primary itself.

#[path = "support/sentinel_set.rs"]
mod sentinel_set;
mod support;

use std::time::{Duration, Instant};

use sentinel_set::{MASTER, SentinelSet};
use socketfleet_harness::redis::redis_cli;
use socketfleet_harness::wait::wait_until;
use socketfleet_operator::children::Ctx;
use socketfleet_operator::children::redis::redis_conf;
use socketfleet_operator::redis_cluster::{Access, Member};
use socketfleet_operator::redis_sentinel::{Action, RedisPod, Report, supervise};

const PASSWORD: &str = support::PASSWORD;

fn fleet() -> socketfleet_api::crd::SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "t", "namespace": "demo", "uid": "u"},
        "spec": {"redis": {"mode": "sentinel", "replicasPerShard": 2}}
    }))
    .expect("fleet")
}

/// One pass over the first `pods` Redis pods, `spec_pods` of them staying.
async fn pass(set: &SentinelSet, pods: usize, spec_pods: usize) -> Report {
    let member = |name: String, port: u16, ordinal| Member { name, addr: format!("127.0.0.1:{port}"), ordinal };
    let sentinels: Vec<Member> = set.sentinel_ports.iter().enumerate().map(|(i, p)| member(format!("sentinel-{i}"), *p, i)).collect();
    let redis: Vec<RedisPod> = set.redis_ports[..pods]
        .iter()
        .enumerate()
        .map(|(i, p)| RedisPod { member: member(format!("redis-{i}"), *p, i), host: "127.0.0.1".into(), port: *p })
        .collect();
    let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
    supervise(&sentinels, &redis, spec_pods, MASTER, &access).await
}

fn field(set: &SentinelSet, sentinel: usize, name: &str) -> String {
    let reply = set.sentinel_cli(sentinel, &["SENTINEL", "MASTER", MASTER]);
    let lines: Vec<&str> = reply.lines().collect();
    lines.iter().position(|l| *l == name).and_then(|i| lines.get(i + 1)).map(|v| v.to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_repairs_and_reports_what_the_sentinels_do_not_decide() {
    let root = std::env::temp_dir().join(format!("sf-sentinel-supervision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut set = SentinelSet::start(&root, &redis_conf(&Ctx::new(&fleet())), 3, PASSWORD);
    let ports = set.redis_ports.clone();

    // A settled set: reported, nothing done.
    let r = pass(&set, 3, 3).await;
    assert_eq!((r.primary.as_deref(), r.sentinels, r.agreeing, r.replicas_in_sync), (Some("redis-0"), 3, 3, 2), "{r:?}");
    assert!(r.actions.is_empty() && !r.leaving_primary, "{r:?}");

    // A Sentinel that lost the master gets it back, with the others' settings and the
    // password (it reaches the primary and finds the replicas again).
    assert_eq!(set.sentinel_cli(1, &["SENTINEL", "REMOVE", MASTER]), "OK");
    let r = pass(&set, 3, 3).await;
    assert_eq!(r.actions, [Action::Monitor { sentinel: "sentinel-1".into(), primary: "redis-0".into() }]);
    assert_eq!(set.primary_port(1), Some(ports[0]));
    assert_eq!(field(&set, 1, "down-after-milliseconds"), "3000", "the peers' settings, not the defaults");
    wait_until("the restored Sentinel sees the replicas through the password", Duration::from_secs(30), || {
        field(&set, 1, "flags") == "master" && field(&set, 1, "num-slaves") == "2"
    });
    let r = pass(&set, 3, 3).await;
    assert!(r.actions.is_empty(), "once is enough: {r:?}");

    // Make pod 2 the primary (Sentinel's own failover), then scale in to 2 pods: the pass
    // asks Sentinel to move the primary to a pod that stays, and says to keep the pods.
    redis_cli(ports[1], Some(PASSWORD), &["CONFIG", "SET", "replica-priority", "0"]);
    assert_eq!(set.sentinel_cli(0, &["SENTINEL", "FAILOVER", MASTER]), "OK");
    wait_until("pod 2 promoted", Duration::from_secs(30), || (0..3).all(|s| set.primary_port(s) == Some(ports[2])));
    wait_until("the replicas follow pod 2", Duration::from_secs(30), || {
        redis_cli(ports[2], Some(PASSWORD), &["INFO", "replication"]).matches("state=online").count() == 2
    });
    let started = Instant::now();
    loop {
        // The first passes may find the Sentinels still finishing the failover above.
        let r = pass(&set, 3, 2).await;
        assert!(r.leaving_primary, "{r:?}");
        if !r.actions.is_empty() {
            assert_eq!(r.actions, [Action::Failover { from: "redis-2".into() }]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no failover asked for: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = loop {
        let r = pass(&set, 3, 2).await;
        if !r.leaving_primary && r.agreeing == 3 {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the primary never left pod 2: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let moved_in = started.elapsed();
    assert!(matches!(settled.primary.as_deref(), Some("redis-0" | "redis-1")), "{settled:?}");
    assert_eq!(redis_cli(ports[2], Some(PASSWORD), &["CONFIG", "GET", "replica-priority"]).lines().nth(1), Some("0"));

    // The StatefulSet shrinks: pod 2 is gone, but every Sentinel still counts it. One
    // Sentinel is reset per pass, never losing the primary.
    set.redis.pop().expect("pod 2").kill();
    let mut resets = Vec::new();
    let started = Instant::now();
    while (0..3).any(|s| field(&set, s, "num-slaves") != "1") {
        let r = pass(&set, 2, 2).await;
        assert_eq!(r.primary, settled.primary, "the primary never changes: {r:?}");
        assert!(r.actions.len() <= 1, "one reset per pass: {r:?}");
        for a in r.actions {
            assert!(matches!(a, Action::Reset { .. }), "{a:?}");
            resets.push(a);
        }
        assert!(started.elapsed() < Duration::from_secs(90), "stale Sentinels left: {resets:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(resets.len(), 3, "each Sentinel once: {resets:?}");
    wait_until("the Sentinels know each other again", Duration::from_secs(30), || {
        (0..3).all(|s| field(&set, s, "num-other-sentinels") == "2")
    });
    let r = pass(&set, 2, 2).await;
    assert!(r.actions.is_empty() && r.agreeing == 3 && r.replicas_in_sync == 1, "{r:?}");
    eprintln!(
        "MEASURE sentinel supervision: lost master restored on sentinel-1; primary moved off the leaving pod in {:.1}s to {}; \
         {} Sentinels reset one per pass in {:.1}s",
        moved_in.as_secs_f64(),
        settled.primary.unwrap_or_default(),
        resets.len(),
        started.elapsed().as_secs_f64()
    );
    drop(set);
    let _ = std::fs::remove_dir_all(&root);
}
