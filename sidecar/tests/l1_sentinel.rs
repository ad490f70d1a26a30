//! L1 sentinel mode: a primary, two replicas and three real Sentinels. The sidecars follow
//! the primary switch when the primary is SIGKILLed, without losing an acknowledged message.

mod support;

use std::time::{Duration, Instant};

use socketfleet_api::settings;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_follow_a_sentinel_failover_without_losing_acknowledged_messages() {
    let mut set = SentinelSet::start();
    let env = vec![
        (settings::ENV_AUTH, "none".to_string()),
        (settings::ENV_REDIS_MODE, "sentinel".to_string()),
        (settings::ENV_REDIS_ADDRS, set.sentinel_addrs()),
        (settings::ENV_REDIS_SENTINEL_MASTER, "mymaster".to_string()),
        (settings::ENV_DURABLE_PUBLISH, "true".to_string()),
    ];
    let sidecars = start_sidecars(2, &env);
    let channels: Vec<String> = (0..4).map(|i| format!("s:{i}")).collect();
    let traffic = Traffic::start(&sidecars, &channels).await;
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
    let (key, probe) = publish_until_acked(&sidecars[1].url(), "s:0", Duration::from_secs(40)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(20));
    let recovered = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    eprintln!(
        "MEASURE sentinel: primary :{old} killed; new primary after {:.2}s; a post-failover publish reached every subscriber {:.2}s after the kill; \
         {total} acked, 0 missing, {refused} refused",
        promoted.as_secs_f64(),
        recovered.as_secs_f64()
    );
}
