//! L1: a Sentinel set started the way the operator's pods start it — every Redis and
//! Sentinel through the fleet's entrypoint (`operator/src/children/redis-entrypoint.sh`)
//! with the fleet's redis.conf — under durable publishing through real sidecars:
//!
//! - the Sentinels ask for the password (clients, the sidecars and each other);
//! - the primary is SIGKILLed and its container restarts at once without persistence:
//!   the Sentinels still name it, so it asks for a failover and follows the new primary
//!   instead of serving empty data (fencing: `min-replicas-to-write`);
//! - every acknowledged message reaches every subscriber exactly once.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socketfleet_api::settings;
use socketfleet_harness::redis::redis_cli as sentinel_cli;
use socketfleet_operator::children::Ctx;
use socketfleet_operator::children::redis::{
    ENTRYPOINT, ENTRYPOINT_ENV_ANNOUNCE_HOST, ENTRYPOINT_ENV_CONF_DIR, ENTRYPOINT_ENV_PRIMARY_HOST, ENTRYPOINT_ENV_PRIMARY_PORT,
    ENTRYPOINT_ENV_RUN_DIR, ENTRYPOINT_ENV_SENTINEL_MASTER, ENTRYPOINT_ENV_SENTINEL_PEERS, ENTRYPOINT_FILE, redis_conf,
};
use support::*;

const MASTER: &str = "socketfleet";

fn fleet() -> socketfleet_api::crd::SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "t", "namespace": "demo", "uid": "u"},
        "spec": {"redis": {"mode": "sentinel", "replicasPerShard": 2, "durablePublish": true}}
    }))
    .expect("fleet")
}

/// One "pod": its config directory (the ConfigMap's files) and private run directory.
struct PodDirs {
    conf: PathBuf,
    run: PathBuf,
}

fn pod_dirs(root: &Path, name: &str, files: &[(&str, String)]) -> PodDirs {
    let (conf, run) = (root.join(format!("{name}-conf")), root.join(format!("{name}-run")));
    for d in [&conf, &run] {
        std::fs::create_dir_all(d).expect("dir");
    }
    std::fs::write(conf.join(ENTRYPOINT_FILE), ENTRYPOINT).expect("entrypoint");
    for (file, text) in files {
        std::fs::write(conf.join(file), text).expect("file");
    }
    PodDirs { conf, run }
}

fn entrypoint(dirs: &PodDirs, role: &str, env: &[(&str, String)], args: &[String]) -> Proc {
    let mut cmd = Command::new("sh");
    cmd.arg(dirs.conf.join(ENTRYPOINT_FILE))
        .arg(role)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_PASSWORD", PASSWORD)
        .env(ENTRYPOINT_ENV_CONF_DIR, &dirs.conf)
        .env(ENTRYPOINT_ENV_RUN_DIR, &dirs.run)
        .env(ENTRYPOINT_ENV_ANNOUNCE_HOST, "127.0.0.1")
        .env(ENTRYPOINT_ENV_SENTINEL_MASTER, MASTER)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::new(cmd.spawn().expect("sh"), role)
}

fn primary_port(sentinel: u16) -> Option<u16> {
    sentinel_cli(sentinel, Some(PASSWORD), &["SENTINEL", "get-master-addr-by-name", MASTER]).lines().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_sentinel_set_fails_over_and_a_primary_back_empty_follows() {
    let root = temp_dir("sentinel-managed");
    let redis_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(" ");
    let fleet_conf = redis_conf(&Ctx::new(&fleet()));
    assert!(fleet_conf.contains("min-replicas-to-write 1"), "fenced: {fleet_conf}");
    let redis_dirs: Vec<PodDirs> = (0..3)
        .map(|i| {
            let data = root.join(format!("redis-{i}-data"));
            std::fs::create_dir_all(&data).expect("data");
            pod_dirs(&root, &format!("redis-{i}"), &[("redis.conf", fleet_conf.replace("/data", &data.display().to_string()))])
        })
        .collect();
    let start_redis = |i: usize| {
        let env = [
            ("HOSTNAME", format!("t-redis-{i}")),
            (ENTRYPOINT_ENV_PRIMARY_HOST, "127.0.0.1".to_string()),
            (ENTRYPOINT_ENV_PRIMARY_PORT, redis_ports[0].to_string()),
            (ENTRYPOINT_ENV_SENTINEL_PEERS, peers.clone()),
            ("SF_REDIS_PORT", redis_ports[i].to_string()),
        ];
        entrypoint(&redis_dirs[i], "redis", &env, &["--port".into(), redis_ports[i].to_string(), "--bind".into(), "127.0.0.1".into()])
    };
    let mut redis: Vec<Proc> = (0..3).map(start_redis).collect();
    for p in &redis_ports[1..] {
        wait_until("a replica in sync", Duration::from_secs(30), || {
            redis_cli(*p, &["INFO", "replication"]).contains("master_link_status:up")
        });
    }
    // The ConfigMap's sentinel.conf names pod 0 by DNS; here pod 0 is on loopback.
    let sentinel_conf = format!(
        "sentinel monitor {MASTER} 127.0.0.1 {} 2\nsentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n",
        redis_ports[0]
    );
    let sentinels: Vec<Proc> = sentinel_ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let dirs = pod_dirs(&root, &format!("sentinel-{i}"), &[("sentinel.conf", sentinel_conf.clone())]);
            let env = [(ENTRYPOINT_ENV_SENTINEL_PEERS, peers.clone())];
            entrypoint(&dirs, "sentinel", &env, &["--port".into(), port.to_string(), "--bind".into(), "127.0.0.1".into()])
        })
        .collect();
    for &s in &sentinel_ports {
        wait_until("a Sentinel that sees its peers and the replicas", Duration::from_secs(30), || {
            let replicas = sentinel_cli(s, Some(PASSWORD), &["SENTINEL", "replicas", MASTER]);
            let peers = sentinel_cli(s, Some(PASSWORD), &["SENTINEL", "sentinels", MASTER]);
            replicas.lines().filter(|l| *l == "flags").count() == 2 && peers.lines().filter(|l| *l == "flags").count() == 2
        });
    }
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
    redis[0].kill();
    redis[0] = start_redis(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while primary_port(sentinel_ports[0]).is_none_or(|p| p == redis_ports[0]) {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed_at.elapsed();
    let new_primary = primary_port(sentinel_ports[0]).expect("a primary");
    wait_until("the restarted pod follows the new primary", Duration::from_secs(40), || {
        let info = redis_cli(redis_ports[0], &["INFO", "replication"]);
        info.contains("role:slave") && info.contains(&format!("master_port:{new_primary}")) && info.contains("master_link_status:up")
    });
    let (key, probe) = publish_until_acked(&sidecars[1].url(), "m:0", Duration::from_secs(40)).await;
    traffic.wait_all_received(&key, probe, Duration::from_secs(20));
    let (total, refused) = traffic.finish(&[(&key, probe)]).await;
    for &s in &sentinel_ports {
        assert_eq!(primary_port(s), Some(new_primary), "every Sentinel names the same primary");
    }
    eprintln!(
        "MEASURE managed sentinel: primary SIGKILLed and restarted empty; {new_primary} promoted after {:.1}s; the old primary \
         follows it; {total} acknowledged publishes, 0 missing, {refused} refused",
        promoted.as_secs_f64()
    );
    drop(sentinels);
    drop(redis);
    let _ = std::fs::remove_dir_all(&root);
}
