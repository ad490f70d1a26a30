//! L1 sentinel mode: a primary, two replicas and three real Sentinels. The sidecars follow
//! the primary switch when the primary is SIGKILLed, without losing an acknowledged message.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_follow_a_sentinel_failover_without_losing_acknowledged_messages() {
    let mut set = SentinelSet::start();
    let env = vec![
        ("SF_AUTH", "none".to_string()),
        ("SF_REDIS_MODE", "sentinel".to_string()),
        ("SF_REDIS_ADDRS", set.sentinel_addrs()),
        ("SF_REDIS_SENTINEL_MASTER", "mymaster".to_string()),
        ("SF_DURABLE_PUBLISH", "true".to_string()),
    ];
    let sidecars = start_sidecars(2, &env);
    let channels: Vec<String> = (0..4).map(|i| format!("s:{i}")).collect();
    let (stop_tx, stop) = watch::channel(false);
    let mut subscribers = Vec::new();
    let mut tasks = Vec::new();
    for s in &sidecars {
        let (r, h) = collect(s.url(), channels.clone(), stop.clone()).await;
        subscribers.push(r);
        tasks.push(h);
    }
    let (pub_stop_tx, pub_stop) = watch::channel(false);
    let publisher = tokio::spawn(publish_until(sidecars[0].url(), channels.clone(), pub_stop));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let old = set.primary_port();
    let killed_at = Instant::now();
    set.kill(old);
    let deadline = Instant::now() + Duration::from_secs(40);
    while set.primary_port() == old {
        assert!(Instant::now() < deadline, "Sentinel did not promote a replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed_at.elapsed();
    // Publishing resumes once the remaining replica follows the new primary (WAIT 1).
    let mut probe = Client::connect(&sidecars[1].url()).await;
    let mut probe_seq = None;
    while probe_seq.is_none() && Instant::now() < deadline {
        let r = probe.publish("s:0", serde_json::json!("probe")).await;
        if r["ok"] == true {
            probe_seq = Some(seq_of(&r["offset"]));
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let probe_seq = probe_seq.expect("publishing resumes after the Sentinel failover");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = pub_stop_tx.send(true);
    let (mut acked, refused) = publisher.await.expect("publisher");
    let s0 = acked.entry("s:0".into()).or_default();
    s0.push(probe_seq);
    s0.sort();
    assert_exactly_once(&subscribers, &acked, Duration::from_secs(20)).await;
    let recovered = killed_at.elapsed();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let total: usize = acked.values().map(Vec::len).sum();
    eprintln!(
        "MEASURE sentinel: primary :{old} killed; new primary after {:.2}s; all acked delivered after {:.2}s; {total} acked, 0 missing, {refused} refused",
        promoted.as_secs_f64(),
        recovered.as_secs_f64()
    );
}
