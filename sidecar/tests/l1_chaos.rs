//! L1 chaos: continuous publishing while a Redis Cluster primary is SIGKILLed, and while a
//! slot is migrated between primaries. Every acknowledged message must reach every
//! subscriber on every sidecar exactly once, in order. Publishes are durable (`WAIT`), as
//! the delivery guarantee requires for failover. And a durable publish stuck waiting for
//! its replica must not hold up other requests to its primary.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use socketfleet_api::settings;
use support::*;

fn durable_env(cluster: &RedisCluster) -> Vec<(&'static str, String)> {
    let mut env = cluster_env(cluster);
    env.push((settings::ENV_DURABLE_PUBLISH, "true".into()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_when_a_cluster_primary_is_killed() {
    let mut cluster = RedisCluster::start();
    let sidecars = start_sidecars(3, &durable_env(&cluster));
    let channels: Vec<String> = (0..8).map(|i| format!("chaos:{i}")).collect();
    let traffic = Traffic::start(&sidecars, &channels).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let slot: u16 = redis_cli(cluster.any_port(), &["CLUSTER", "KEYSLOT", "sf:{chaos:0}"]).parse().expect("slot");
    let victim = cluster.primary_for_slot(slot);
    let killed_at = Instant::now();
    cluster.kill(victim);
    let survivor = cluster.nodes.iter().map(|(p, _)| *p).find(|p| *p != victim).expect("a survivor");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(redis_cli(survivor, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
        && cluster.try_primary_for_slot(slot).is_some_and(|p| p != victim))
    {
        assert!(Instant::now() < deadline, "no failover of :{victim} after 30s:\n{}", redis_cli(survivor, &["CLUSTER", "NODES"]));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_over = killed_at.elapsed();
    // Bring the node back, as Kubernetes would restart the pod: it rejoins as a replica,
    // so durable publishes on that shard succeed again.
    cluster.restart(victim);
    let (key, probe) = publish_until_acked(&sidecars[1].url(), "chaos:0", Duration::from_secs(30)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(30));
    let recovered = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    let resubscribes: f64 = sidecars.iter().map(|s| s.metric("socketfleet_sidecar_resubscribes_total")).sum();
    assert!(resubscribes > 0.0, "the sidecars resubscribed after the failover");
    eprintln!(
        "MEASURE failover: killed primary :{victim}; replica promoted after {:.2}s; a post-failover publish reached every subscriber \
         {:.2}s after the kill; {total} acked publishes, 0 missing, {refused} refused during failover, {resubscribes} resubscribes",
        failed_over.as_secs_f64(),
        recovered.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_while_a_slot_migrates() {
    let cluster = RedisCluster::start();
    let sidecars = start_sidecars(3, &durable_env(&cluster));
    let channels: Vec<String> = vec!["move:me".into(), "stay:a".into(), "stay:b".into()];
    let traffic = Traffic::start(&sidecars, &channels).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let slot: u16 = redis_cli(cluster.any_port(), &["CLUSTER", "KEYSLOT", "sf:{move:me}"]).parse().expect("slot");
    let src = cluster.primary_for_slot(slot);
    let dst = *cluster.primaries().iter().find(|p| **p != src).expect("another primary");
    let (src_id, dst_id) = (cluster.node_id(src), cluster.node_id(dst));
    let slot_s = slot.to_string();
    assert_eq!(redis_cli(dst, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &src_id]), "OK");
    assert_eq!(redis_cli(src, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &dst_id]), "OK");
    // Let publishes run against the half-migrated slot (ASK / TRYAGAIN paths).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..100 {
        let keys = redis_cli(src, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"]);
        let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
        if keys.is_empty() {
            break;
        }
        let dst_port = dst.to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &dst_port, "", "0", "5000", "AUTH", PASSWORD, "KEYS"];
        args.extend(keys);
        let out = redis_cli(src, &args);
        assert!(out == "OK" || out == "NOKEY", "MIGRATE: {out}");
    }
    for p in cluster.primaries() {
        redis_cli(p, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &dst_id]);
    }
    wait_until("slot owned by the destination", Duration::from_secs(10), || cluster.primary_for_slot(slot) == dst);
    // A publication on the moved channel after the migration reaches everyone.
    let (key, probe) = publish_until_acked(&sidecars[2].url(), "move:me", Duration::from_secs(10)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    let resubscribes: f64 = sidecars.iter().map(|s| s.metric("socketfleet_sidecar_resubscribes_total")).sum();
    assert!(resubscribes >= 3.0, "every sidecar moved its subscription to the new owner ({resubscribes})");
    eprintln!(
        "MEASURE migration: slot {slot} :{src} -> :{dst}; {total} acked publishes, 0 missing, {refused} refused, {resubscribes} resubscribes"
    );
}

/// `WAIT` blocks the Redis connection it is sent on: no later command on it is read until
/// the replica answers or the wait times out. With the replica frozen, a durable publish
/// waits its full timeout; a history read of the same channel (same primary) sent while it
/// waits must be answered first, not queued behind it (what made a reshard's p99 4 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_publish_waiting_for_its_replica_does_not_hold_up_reads_on_its_primary() {
    let cluster = RedisCluster::start();
    let mut env = durable_env(&cluster);
    env.push((settings::ENV_REDIS_TIMEOUT, "6s".into())); // WAIT waits 3 s
    let sidecars = start_sidecars(1, &env);
    let url = sidecars[0].url();
    let ch = "held:up";
    let mut publisher = Client::connect(&url).await;
    assert_eq!(publisher.publish(ch, json!("before")).await["ok"], true, "a durable publish with the replica up");
    let replica = cluster.replica_of(cluster.primary_for(&format!("sf:{{{ch}}}")));
    let replica_pid = cluster.pid(replica);
    signal(replica_pid, "-STOP");
    publisher.send_raw(json!({"op": "publish", "channel": ch, "data": "while frozen", "id": 99}).to_string().into()).await;
    // Give the publish time to reach Redis and block there in WAIT.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reader = Client::connect(&url).await;
    let page = reader.call(json!({"op": "history", "channel": ch, "limit": 10})).await;
    let early = publisher.next_frame(Duration::from_millis(1)).await;
    let publish_answer = match &early {
        Some(f) => f.clone(),
        None => publisher.next_frame(Duration::from_secs(10)).await.unwrap_or_default(),
    };
    signal(replica_pid, "-CONT");
    assert!(page["messages"].is_array(), "{page}");
    assert!(early.is_none(), "the read was answered only after the blocked publish: {publish_answer}");
    // The publish really was held by WAIT (else this test proves nothing): no replica
    // confirmed it in time.
    assert_eq!(publish_answer["code"], "not_durable", "{publish_answer}");
}
