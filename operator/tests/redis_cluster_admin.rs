//! The operator's Redis Cluster admin code driving real `redis-server` processes on
//! loopback: bootstrap, a restart of every pod at once on new addresses, a pod that comes
//! back empty, a dead primary without replicas, and an interrupted slot migration.
//!
//! A "pod" is a redis-server process with its own directory (its `nodes.conf`). A pod
//! rescheduled with a new IP is modelled by restarting it on a new port: to Redis an
//! address is `ip:port`, so the healing path is the same.

mod support;

use std::time::Duration;

use socketfleet_harness::cluster_keys::key_slot;
use socketfleet_operator::redis_cluster::{Access, Action, Layout, heal};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstraps_then_survives_a_restart_of_every_pod_on_new_addresses() {
    let mut cluster = Cluster::new("restart", Layout { shards: 3, replicas_per_shard: 1 });
    let (actions, report) = cluster.converge("bootstrap").await;
    assert_eq!(count(&actions, |a| matches!(a, Action::AssignSlots { fresh: true, .. })), 3, "{actions:?}");
    assert_eq!(count(&actions, |a| matches!(a, Action::Replicate { .. })), 3, "{actions:?}");
    assert_eq!((report.primaries, report.replicas, report.slots_covered), (3, 3, 16384));

    // A converged cluster makes a pass do nothing.
    let again = heal(cluster.layout, &cluster.members(), &Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) })
        .await
        .expect("pass");
    assert!(again.actions.is_empty() && again.converged, "{again:?}");

    // Every pod stops, and all come back on new addresses. Without persistence the data is
    // gone, but `nodes.conf` keeps each node's id and slots: the cluster must be re-met,
    // never re-created.
    let ids = cluster.node_ids();
    for p in &mut cluster.pods {
        p.stop();
    }
    for p in &mut cluster.pods {
        p.port = free_port();
        p.start();
    }
    let (actions, report) = cluster.converge("full restart on new addresses").await;
    assert!(count(&actions, |a| matches!(a, Action::Meet { .. })) >= 1, "re-met: {actions:?}");
    assert_eq!(count(&actions, |a| matches!(a, Action::AssignSlots { .. })), 0, "no slot was reassigned: {actions:?}");
    assert_eq!(cluster.node_ids(), ids, "the same nodes came back");
    assert_eq!(report.slots_covered, 16384);
    cluster.set("after", "restart");
    assert_eq!(cluster.get("after"), "restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_comes_back_empty_replaces_its_dead_node() {
    let mut cluster = Cluster::new("empty", Layout { shards: 3, replicas_per_shard: 1 });
    cluster.converge("bootstrap").await;
    // Pod 4 (a replica of shard 1) loses its disk and comes back as a new node on a new
    // address, once the cluster agreed it failed, as it would in a real outage.
    let old_id = cluster.lose(4);
    cluster
        .wait_for("the dead replica marked failed", &["CLUSTER", "NODES"], |n| {
            n.lines().any(|l| l.starts_with(&old_id) && l.contains("fail"))
        })
        .await;
    cluster.pods[4].port = free_port();
    cluster.pods[4].start();
    let (actions, report) = cluster.converge("empty pod").await;
    assert!(actions.contains(&Action::Forget { id: old_id.clone(), owned_slots: 0 }), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::Replicate { pod, .. } if pod == "redis-4")), "{actions:?}");
    assert_eq!((report.primaries, report.replicas), (3, 3));
    for p in &cluster.pods {
        assert!(!cli(p.port, &["CLUSTER", "NODES"]).contains(&old_id), "every pod forgot {old_id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_of_a_dead_primary_without_replicas_are_served_again() {
    let mut cluster = Cluster::new("uncovered", Layout { shards: 3, replicas_per_shard: 0 });
    cluster.converge("bootstrap").await;
    let old_id = cluster.lose(2);
    cluster.wait_for("the cluster to notice", &["CLUSTER", "INFO"], |i| i.contains("cluster_state:fail")).await;
    // Meanwhile the report says which slots are not served.
    // Once the cluster agreed it failed and no replica can take over, the dead node is
    // forgotten so its slots can be served again; until a pod can take them, the report
    // says they are not served.
    let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
    let down = heal(cluster.layout, &cluster.members(), &access).await.expect("pass");
    assert!(down.actions.iter().any(|a| matches!(a, Action::Forget { id, owned_slots } if *id == old_id && *owned_slots > 0)), "{down:?}");
    assert!(down.actions.iter().all(|a| a.is_warning()), "{down:?}");
    let down = heal(cluster.layout, &cluster.members(), &access).await.expect("pass");
    assert!(down.slots_covered < 16384 && !down.converged, "{down:?}");

    cluster.pods[2].port = free_port();
    cluster.pods[2].start();
    let (actions, report) = cluster.converge("replacement primary").await;
    assert!(actions.iter().any(|a| matches!(a, Action::AssignSlots { pod, fresh: false, .. } if pod == "redis-2")), "{actions:?}");
    assert_eq!(report.slots_covered, 16384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_migrations_are_finished_or_rolled_back() {
    let cluster = Cluster::new("migrate", Layout { shards: 3, replicas_per_shard: 0 });
    cluster.converge("bootstrap").await;
    let ids = cluster.node_ids();
    let (p0, p1) = (cluster.pods[0].port, cluster.pods[1].port);
    // Slot 100 belongs to pod 0. Interrupt a migration to pod 1 that never moved a key...
    for (port, args) in
        [(p1, ["CLUSTER", "SETSLOT", "100", "IMPORTING", &ids[0]]), (p0, ["CLUSTER", "SETSLOT", "100", "MIGRATING", &ids[1]])]
    {
        assert_eq!(cli(port, &args), "OK");
    }
    // ...and one of slot 200 that moved one of its two keys.
    let key_in = |slot: u16| (0..1_000_000).map(|i| format!("k{i}")).find(|k| key_slot(k) == slot);
    let moved = key_in(200).expect("a key in slot 200");
    let stays = (0..100_000).map(|i| format!("{{{moved}}}x{i}")).next().expect("same slot");
    for k in [&moved, &stays] {
        assert_eq!(cli(p0, &["SET", k, "v"]), "OK");
    }
    for (port, args) in
        [(p1, ["CLUSTER", "SETSLOT", "200", "IMPORTING", &ids[0]]), (p0, ["CLUSTER", "SETSLOT", "200", "MIGRATING", &ids[1]])]
    {
        assert_eq!(cli(port, &args), "OK");
    }
    let p1s = p1.to_string();
    assert_eq!(cli(p0, &["MIGRATE", "127.0.0.1", &p1s, &moved, "0", "5000", "AUTH", PASSWORD]), "OK");

    let (actions, _) = cluster.converge("open slots").await;
    assert!(actions.contains(&Action::RollBackMigration { slot: 100 }), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::FinishMigration { slot: 200, keys_moved: 1, .. })), "{actions:?}");
    assert!(cli(p0, &["CLUSTER", "NODES"]).lines().all(|l| !l.contains('[')), "no open slot is left");
    assert_eq!(cluster.get(&moved), "v");
    assert_eq!(cluster.get(&stays), "v");
}
