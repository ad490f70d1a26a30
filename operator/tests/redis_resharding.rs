//! Resharding with the operator's admin pass against real `redis-server` processes: a
//! cluster of 3 shards grows to 5 and shrinks back to 3 holding 10,000 keys, a pass cut
//! off in the middle of a slot move (an operator restarted mid-reshard) is resumed, and a
//! source primary killed mid-reshard is replaced by its replica without losing a key.
//!
//! The StatefulSet is modelled by `Cluster::grow` (new pods start) and by removing pods
//! beyond the layout only once a pass reports they hold nothing, as the operator does.

mod support;

use std::time::{Duration, Instant};

use socketfleet_operator::redis_cluster::{Access, Action, Layout, heal};
use support::*;

const KEYS: usize = 10_000;

fn moved(actions: &[Action]) -> (usize, usize) {
    actions.iter().fold((0, 0), |(s, k), a| match a {
        Action::MoveSlots { slots, keys, .. } => (s + slots, k + keys),
        _ => (s, k),
    })
}

fn assert_even(cluster: &Cluster, shards: usize) {
    let counts = cluster.slot_counts();
    assert_eq!(counts.len(), shards, "{counts:?}");
    assert!(counts.iter().all(|(_, n)| n.abs_diff(16384 / shards) <= 1), "the even split: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_grow_to_five_and_shrink_back_without_losing_a_key() {
    let mut cluster = Cluster::new("reshard", Layout { shards: 3, replicas_per_shard: 1 });
    cluster.converge("bootstrap").await;
    cluster.write_keys(KEYS).await;
    assert_eq!(cluster.readable_keys(KEYS).await, KEYS);

    let started = Instant::now();
    cluster.grow(Layout { shards: 5, replicas_per_shard: 1 });
    let (actions, report) = cluster.converge_resizing("3 -> 5", Duration::from_secs(240)).await;
    let out_time = started.elapsed();
    let (slots_out, keys_out) = moved(&actions);
    assert_eq!((report.primaries, report.replicas), (5, 5), "{report:?}");
    assert_even(&cluster, 5);
    let givers: std::collections::BTreeSet<&String> =
        actions.iter().filter_map(|a| if let Action::MoveSlots { from, .. } = a { Some(from) } else { None }).collect();
    assert_eq!(givers.len(), 3, "every old primary gave slots: {givers:?}");
    assert_eq!(cluster.readable_keys(KEYS).await, KEYS, "every key after 3 -> 5");

    let started = Instant::now();
    cluster.layout = Layout { shards: 3, replicas_per_shard: 1 };
    let (actions, report) = cluster.converge_resizing("5 -> 3", Duration::from_secs(240)).await;
    let in_time = started.elapsed();
    let (slots_in, keys_in) = moved(&actions);
    assert_eq!((report.primaries, report.replicas, cluster.pods.len()), (3, 3, 6), "{report:?}");
    assert_even(&cluster, 3);
    assert_eq!(cluster.readable_keys(KEYS).await, KEYS, "every key after 5 -> 3");
    let forgotten = actions.iter().filter(|a| matches!(a, Action::Forget { owned_slots: 0, .. })).count();
    assert_eq!(forgotten, 4, "the 4 removed pods are forgotten: {actions:?}");
    for pod in &cluster.pods {
        let known = cli(pod.port, &["CLUSTER", "NODES"]).lines().count();
        assert_eq!(known, 6, "pod {} knows only the 6 pods that stay", pod.ordinal);
    }
    eprintln!(
        "MEASURE reshard 3->5: {slots_out} slots and {keys_out} keys in {:.1}s ({:.0} slots/s); 5->3: {slots_in} slots and {keys_in} keys \
         in {:.1}s ({:.0} slots/s, removal of the 4 pods included); {KEYS} of {KEYS} keys readable after each",
        out_time.as_secs_f64(),
        slots_out as f64 / out_time.as_secs_f64(),
        in_time.as_secs_f64(),
        slots_in as f64 / in_time.as_secs_f64(),
    );
}

/// A cluster of 3 shards holding [`KEYS`] keys, just grown to a layout of 4 (nothing moved
/// yet), and the access to drive it.
async fn growing(name: &str, replicas_per_shard: usize) -> (Cluster, Access) {
    let mut cluster = Cluster::new(name, Layout { shards: 3, replicas_per_shard });
    cluster.converge("bootstrap").await;
    cluster.write_keys(KEYS).await;
    cluster.grow(Layout { shards: 4, replicas_per_shard });
    (cluster, Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_cut_off_mid_move_resumes_where_it_stopped() {
    let (mut cluster, access) = growing("resume", 0).await;
    // Passes cut off after a few milliseconds, as an operator killed mid-pass leaves it:
    // until one of them leaves a slot open.
    let mut open = false;
    for cut in 0..200u64 {
        let members = cluster.members();
        let _ = tokio::time::timeout(Duration::from_millis(20 + cut % 30), heal(cluster.layout, &members, &access)).await;
        let nodes = cluster.pods.iter().map(|p| socketfleet_harness::redis::redis_cli(p.port, Some(PASSWORD), &["CLUSTER", "NODES"]));
        if nodes.into_iter().any(|n| n.contains("->-") || n.contains("-<-")) {
            open = true;
            break;
        }
    }
    assert!(open, "a cut-off pass left a slot open");
    let (actions, _) = cluster.converge_resizing("resumed", Duration::from_secs(240)).await;
    assert!(
        actions.iter().any(|a| matches!(a, Action::FinishMigration { .. } | Action::RollBackMigration { .. })),
        "the open slot was closed first: {:?}",
        &actions[..actions.len().min(5)]
    );
    assert_even(&cluster, 4);
    assert_eq!(cluster.readable_keys(KEYS).await, KEYS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_reshard_is_replaced_and_no_key_is_lost() {
    let (mut cluster, access) = growing("killed", 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Passes until slots are moving, then one cut off mid-move, then the kill of its source.
    let source = loop {
        let members = cluster.members();
        let _ = tokio::time::timeout(Duration::from_millis(400), heal(cluster.layout, &members, &access)).await;
        let open = cluster.pods.iter().find(|p| {
            socketfleet_harness::redis::redis_cli(p.port, Some(PASSWORD), &["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.contains("myself") && l.contains("->-"))
        });
        if let Some(p) = open {
            break p.ordinal;
        }
        assert!(Instant::now() < deadline, "no slot was ever left open");
    };
    cluster.pods[source].stop();
    let (actions, report) = cluster.converge_resizing_with_return(source, Duration::from_secs(240)).await;
    assert_eq!(report.primaries, 4, "{report:?}");
    // The open slot is closed by the operator (finished or rolled back), unless its whole
    // open state lived on the killed source: cut off after the target already owned it,
    // the target's claim (a newer epoch) wins over the promoted replica's. Either way no
    // slot may be left open.
    let closed = actions.iter().any(|a| matches!(a, Action::FinishMigration { .. } | Action::RollBackMigration { .. }));
    let left_open: Vec<String> = cluster
        .pods
        .iter()
        .flat_map(|p| {
            socketfleet_harness::redis::redis_cli(p.port, Some(PASSWORD), &["CLUSTER", "NODES"])
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("myself") && (l.contains("->-") || l.contains("-<-")))
        .collect();
    assert!(left_open.is_empty(), "slots left open: {left_open:?}; actions {actions:?}");
    eprintln!("killed source pod {source}: the open slot was {}", if closed { "closed by the operator" } else { "settled by the cluster" });
    let readable = cluster.readable_keys(KEYS).await;
    assert_eq!(readable, KEYS, "no key lost with the killed source (pod {source}); actions {actions:?}");
}

/// Slots are moved into a new primary only once its replica holds its copy: until then a
/// durable publish to those slots waits out its `WAIT` and is refused. The new pods here
/// hold back the first copy (`repl-diskless-sync-delay 30`), so the replica's link stays
/// down, and no pass may move a slot; once the copy is let go, the reshard runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_move_into_a_new_primary_only_after_its_replica_has_its_copy() {
    let (mut cluster, access) = growing("synced", 1).await;
    let new_pods: Vec<(String, u16)> = cluster.pods[6..].iter().map(|p| (p.member().name, p.port)).collect();
    for (_, port) in &new_pods {
        assert_eq!(cli(*port, &["CONFIG", "SET", "repl-diskless-sync-delay", "30"]), "OK");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let (replica, primary) = loop {
        let report = heal(cluster.layout, &cluster.members(), &access).await.expect("a pass runs");
        let attached = report.actions.iter().find_map(|a| match a {
            Action::Replicate { pod, primary } if new_pods.iter().any(|(name, _)| name == primary) => Some((pod.clone(), primary.clone())),
            _ => None,
        });
        assert!(moved(&report.actions).0 == 0, "slots moved before the new primary had a replica: {:?}", report.actions);
        if let Some(link) = attached {
            break link;
        }
        assert!(Instant::now() < deadline, "the new primary never got a replica; last {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let port_of = |name: &str| cluster.pods.iter().find(|p| p.member().name == name).map(|p| p.port).expect("a pod of that name");
    for _ in 0..6 {
        let report = heal(cluster.layout, &cluster.members(), &access).await.expect("a pass runs");
        assert_eq!(moved(&report.actions), (0, 0), "slots moved into {primary} while {replica} was copying: {:?}", report.actions);
        assert!(!report.converged);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let link = cli(port_of(&replica), &["INFO", "replication"]);
    assert!(link.contains("master_link_status:down"), "the premise: {replica} is still waiting for its copy:\n{link}");
    assert_eq!(cli(port_of(&primary), &["CONFIG", "SET", "repl-diskless-sync-delay", "0"]), "OK");
    let (actions, _) = cluster.converge_resizing("after the copy", Duration::from_secs(240)).await;
    let into_new = actions.iter().filter(|a| matches!(a, Action::MoveSlots { to, .. } if *to == primary)).count();
    assert!(into_new > 0, "slots moved into {primary} once its replica had its copy");
    assert_even(&cluster, 4);
    assert_eq!(cluster.readable_keys(KEYS).await, KEYS);
}
