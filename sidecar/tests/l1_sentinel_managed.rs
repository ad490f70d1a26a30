//! L1: a Sentinel set started the way the operator's pods start it — every Redis and
//! Sentinel through the fleet's entrypoint (`operator/src/children/redis-entrypoint.sh`)
//! with the fleet's redis.conf — under durable publishing through real sidecars:
//!
//! - the Sentinels ask for the password (clients, the sidecars and each other);
//! - the primary is SIGKILLed and its container restarts at once without persistence:
//!   the Sentinels still name it, so it stays down until they fail over and follows the
//!   new primary
//!   instead of serving empty data (fencing: `min-replicas-to-write`);
//! - every acknowledged message reaches every subscriber exactly once.

#[path = "../../operator/tests/support/sentinel_set.rs"]
mod sentinel_set;
mod support;

use std::time::{Duration, Instant};

use sentinel_set::{MASTER, SentinelSet};
use socketfleet_api::settings;
use socketfleet_harness::redis::redis_cli as sentinel_cli;
use socketfleet_harness::wait::poll_until;
use socketfleet_operator::children::Ctx;
use socketfleet_operator::children::redis::redis_conf;
use socketfleet_operator::redis_cluster::{Access, Member};
use socketfleet_operator::redis_sentinel::{self, RedisPod};
use support::*;

fn fleet() -> socketfleet_api::crd::SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "t", "namespace": "demo", "uid": "u"},
        "spec": {"redis": {"mode": "sentinel", "replicasPerShard": 2, "durablePublish": true}}
    }))
    .expect("fleet")
}

/// The operator's supervision pass over the set.
async fn supervise(set: &SentinelSet) -> redis_sentinel::Report {
    let member = |name: String, port: u16, ordinal| Member { name, addr: format!("127.0.0.1:{port}"), ordinal };
    let sentinels: Vec<Member> = set.sentinel_ports.iter().enumerate().map(|(i, p)| member(format!("sentinel-{i}"), *p, i)).collect();
    let redis: Vec<RedisPod> = set
        .redis_ports
        .iter()
        .enumerate()
        .map(|(i, p)| RedisPod { member: member(format!("redis-{i}"), *p, i), host: "127.0.0.1".into(), port: *p })
        .collect();
    let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
    redis_sentinel::supervise(&sentinels, &redis, set.redis_ports.len(), MASTER, &access).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_sentinel_set_fails_over_and_a_primary_back_empty_follows() {
    let root = temp_dir("sentinel-managed");
    let fleet_conf = redis_conf(&Ctx::new(&fleet()));
    assert!(fleet_conf.contains("min-replicas-to-write 1"), "fenced: {fleet_conf}");
    let mut set = SentinelSet::start(&root, &fleet_conf, 3, PASSWORD);
    let (redis_ports, sentinel_ports, peers) = (set.redis_ports.clone(), set.sentinel_ports.clone(), set.peers.clone());
    let before = supervise(&set).await;
    assert_eq!((before.primary.as_deref(), before.agreeing, before.replicas_in_sync), (Some("redis-0"), 3, 2), "{before:?}");
    let refused = sentinel_cli(sentinel_ports[0], None, &["SENTINEL", "masters"]);
    assert!(refused.contains("NOAUTH"), "a client without the password is refused: {refused}");

    let env = vec![
        (settings::ENV_AUTH, "none".to_string()),
        (settings::ENV_REDIS_MODE, "sentinel".to_string()),
        (settings::ENV_REDIS_ADDRS, peers.replace(' ', ",")),
        (settings::ENV_REDIS_SENTINEL_MASTER, MASTER.to_string()),
        (settings::ENV_REDIS_SENTINEL_PASSWORD, PASSWORD.to_string()),
        (settings::ENV_DURABLE_PUBLISH, "true".to_string()),
    ];
    let sidecars = start_sidecars(2, &env);
    let channels: Vec<String> = (0..4).map(|i| format!("m:{i}")).collect();
    let traffic = Traffic::start(&sidecars, &channels).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // SIGKILL, and the container restarts at once: same address, no data.
    let killed_at = Instant::now();
    set.redis[0].kill();
    set.redis[0] = set.start_redis(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while set.primary_port(0).is_none_or(|p| p == redis_ports[0]) {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed_at.elapsed();
    let new_primary = set.primary_port(0).expect("a primary");
    let follows = |info: &str| {
        info.contains("role:slave") && info.contains(&format!("master_port:{new_primary}")) && info.contains("master_link_status:up")
    };
    let info = || redis_cli(redis_ports[0], &["INFO", "replication"]);
    if !poll_until(Duration::from_secs(40), || follows(&info())) {
        // A failure says why: what the restarted pod's entrypoint did and what each Sentinel names.
        panic!(
            "the restarted pod does not follow {new_primary} (promoted after {:.1}s) within 40 s: its INFO replication {:?}; \
             Sentinels name {:?}; its entrypoint's log:\n{}",
            promoted.as_secs_f64(),
            info(),
            (0..sentinel_ports.len()).map(|s| set.primary_port(s)).collect::<Vec<_>>(),
            std::fs::read_to_string(root.join("redis-0-run.log")).unwrap_or_default(),
        );
    }
    let (key, probe) = publish_until_acked(&sidecars[1].url(), "m:0", Duration::from_secs(40)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(20));
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    for s in 0..sentinel_ports.len() {
        assert_eq!(set.primary_port(s), Some(new_primary), "every Sentinel names the same primary");
        // One failover, not two racing (a second one would demote a primary that took writes).
        let master = set.sentinel_cli(s, &["SENTINEL", "master", MASTER]);
        let epoch = master.lines().skip_while(|l| *l != "config-epoch").nth(1);
        assert_eq!(epoch, Some("1"), "exactly one failover: {master}");
    }
    // The operator's view: the promoted pod, the returned one among its replicas in sync,
    // the Sentinels' memory clean (same names: nothing to reset), nothing else to do.
    let after = supervise(&set).await;
    let promoted_pod = format!("redis-{}", redis_ports.iter().position(|p| *p == new_primary).expect("a pod"));
    assert_eq!((after.primary.as_deref(), after.agreeing, after.replicas_in_sync), (Some(promoted_pod.as_str()), 3, 2), "{after:?}");
    assert!(after.actions.is_empty(), "{after:?}");
    eprintln!(
        "MEASURE managed sentinel: primary SIGKILLed and restarted empty; {new_primary} promoted after {:.1}s; the old primary \
         follows it; {total} acknowledged publishes, 0 missing, {refused} refused",
        promoted.as_secs_f64()
    );
    drop(set);
    let _ = std::fs::remove_dir_all(&root);
}
