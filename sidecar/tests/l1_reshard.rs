//! L1: the operator's resharding under live traffic. A Redis Cluster of 3 shards grows to
//! 5 and shrinks back to 3, driven by the operator's own admin pass, while 100 channels
//! are published on durably and every sidecar has a subscriber on every channel: every
//! acknowledged message must reach every subscriber exactly once, in order, across the
//! slot moves (ASK/TRYAGAIN for publishes, `sunsubscribe` and backfill for subscribers).

mod support;

use std::time::{Duration, Instant};

use socketfleet_api::settings;
use socketfleet_operator::redis_cluster::{Access, Action, Layout, Member, Report, heal};
use support::*;

fn members(cluster: &RedisCluster) -> Vec<Member> {
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (port, _))| Member { name: format!("redis-{i}"), addr: format!("127.0.0.1:{port}"), ordinal: i })
        .collect()
}

/// Passes until converged on `layout`; nodes beyond it are stopped (the StatefulSet's
/// shrink) once a pass reports they hold nothing. Returns the slots moved and the report.
async fn reshard(cluster: &mut RedisCluster, layout: Layout) -> (usize, Report) {
    let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut moved = 0;
    loop {
        let report = heal(layout, &members(cluster), &access).await.expect("a pass runs");
        moved += report.actions.iter().map(|a| if let Action::MoveSlots { slots, .. } = a { *slots } else { 0 }).sum::<usize>();
        if report.leaving_busy == 0 && cluster.nodes.len() > layout.pods() {
            cluster.nodes.truncate(layout.pods());
        }
        if report.converged && report.cluster_state == "ok" {
            return (moved, report);
        }
        assert!(Instant::now() < deadline, "not converged on {layout:?}: {report:?}");
        if report.actions.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_while_the_cluster_grows_and_shrinks() {
    let mut cluster = RedisCluster::start();
    let mut env = cluster_env(&cluster);
    env.push((settings::ENV_DURABLE_PUBLISH, "true".into()));
    let sidecars = start_sidecars(3, &env);
    let channels: Vec<String> = (0..100).map(|i| format!("busy:{i}")).collect();
    let traffic = Traffic::start(&sidecars, &channels).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    for _ in 0..4 {
        cluster.add_node();
    }
    let started = Instant::now();
    let (out, report) = reshard(&mut cluster, Layout { shards: 5, replicas_per_shard: 1 }).await;
    let out_time = started.elapsed();
    assert_eq!((report.primaries, report.replicas), (5, 5), "{report:?}");
    let started = Instant::now();
    let (back, report) = reshard(&mut cluster, Layout { shards: 3, replicas_per_shard: 1 }).await;
    let in_time = started.elapsed();
    assert_eq!((report.primaries, report.replicas, cluster.nodes.len()), (3, 3, 6), "{report:?}");

    let (key, probe) = publish_until_acked(&sidecars[2].url(), "busy:0", Duration::from_secs(30)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(30));
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    let resubscribes: f64 = sidecars.iter().map(|s| s.metric("socketfleet_sidecar_resubscribes_total")).sum();
    eprintln!(
        "MEASURE reshard under load: 3->5 moved {out} slots in {:.1}s, 5->3 moved {back} slots in {:.1}s; {total} acknowledged publishes \
         on 100 channels, every one received once and in order by 3 subscribers; {refused} refused; {resubscribes} resubscribes",
        out_time.as_secs_f64(),
        in_time.as_secs_f64()
    );
}
