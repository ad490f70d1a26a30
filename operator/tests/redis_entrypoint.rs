//! The Redis and Sentinel containers' entrypoint (`operator/src/children/redis-entrypoint.sh`,
//! shipped in the fleet's ConfigMap) run with `sh` against real `redis-server` and
//! `redis-sentinel` processes: the password authenticates clients, replicas and Sentinels,
//! and appears on no command line; the preStop hook hands a cluster primary's slots to its
//! replica before the pod stops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socketfleet_harness::ports::{free_cluster_port, free_port};
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::{IN_MEMORY_ARGS, TEST_CLUSTER_ARGS, create_cluster, redis_cli, start_anywhere};
use socketfleet_harness::wait::wait_until;

use socketfleet_operator::children::redis::{
    ENTRYPOINT, ENTRYPOINT_ENV_ANNOUNCE_HOST, ENTRYPOINT_ENV_CONF_DIR, ENTRYPOINT_ENV_PRIMARY_HOST, ENTRYPOINT_ENV_PRIMARY_PORT,
    ENTRYPOINT_ENV_RUN_DIR, ENTRYPOINT_ENV_SENTINEL_MASTER, ENTRYPOINT_FILE, redis_conf,
};
use socketfleet_operator::children::{Ctx, build};

mod support;

/// The shared helpers' password: their key writers and readers authenticate with it.
const PASSWORD: &str = support::PASSWORD;

/// A "pod": the ConfigMap's files in `conf`, a private run directory, the entrypoint.
fn entrypoint(conf: &Path, run: &Path, role: &str, env: &[(&str, String)], args: &[String]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg(conf.join(ENTRYPOINT_FILE))
        .arg(role)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_PASSWORD", PASSWORD)
        .env(ENTRYPOINT_ENV_CONF_DIR, conf)
        .env(ENTRYPOINT_ENV_RUN_DIR, run)
        .env(ENTRYPOINT_ENV_ANNOUNCE_HOST, "127.0.0.1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

fn sentinel_fleet() -> socketfleet_api::crd::SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "t", "namespace": "demo", "uid": "u"}, "spec": {"redis": {"mode": "sentinel"}}
    }))
    .expect("fleet")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sf-entrypoint-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[test]
fn redis_and_sentinel_start_with_the_password_off_the_command_line() {
    let fleet = sentinel_fleet();
    // The files exactly as the fleet's ConfigMap carries them.
    let config_map = build(
        &fleet,
        &socketfleet_operator::children::Generated { redis_password: PASSWORD.into(), resume_key: "r".into(), jwt_secret: "j".into() },
    )
    .config_maps
    .remove(0);
    let data = config_map.data.expect("data");
    assert_eq!(data[ENTRYPOINT_FILE], ENTRYPOINT);
    assert_eq!(data["redis.conf"], redis_conf(&Ctx::new(&fleet)));
    let conf = dir("conf");
    std::fs::write(conf.join(ENTRYPOINT_FILE), ENTRYPOINT).expect("write");
    // Its `dir /data` exists in a pod; here the data directory is a temporary one.
    let data_dir = dir("data");
    std::fs::write(conf.join("redis.conf"), data["redis.conf"].replace("dir /data", &format!("dir {}", data_dir.display())))
        .expect("write");
    let (primary, replica, sentinel) = (free_port(), free_port(), free_port());
    // The ConfigMap's sentinel.conf names pod DNS names; here the primary is on loopback.
    std::fs::write(
        conf.join("sentinel.conf"),
        format!("port {sentinel}\nsentinel monitor socketfleet 127.0.0.1 {primary} 1\nsentinel down-after-milliseconds socketfleet 1000\n"),
    )
    .expect("write");
    let mut procs: Vec<Proc> = Vec::new();
    let redis_args = |port: u16| vec!["--port".to_string(), port.to_string(), "--bind".into(), "127.0.0.1".into()];
    let pod = |host: &str| {
        vec![
            ("HOSTNAME", host.to_string()),
            (ENTRYPOINT_ENV_PRIMARY_HOST, "127.0.0.1".to_string()),
            (ENTRYPOINT_ENV_PRIMARY_PORT, primary.to_string()),
        ]
    };
    let (run0, run1, run_s) = (dir("run0"), dir("run1"), dir("runs"));
    let mut start = |cmd: &mut Command, name: &str| procs.push(Proc::new(cmd.spawn().expect("sh"), name));
    start(&mut entrypoint(&conf, &run0, "redis", &pod("t-redis-0"), &redis_args(primary)), "redis-0");
    start(&mut entrypoint(&conf, &run1, "redis", &pod("t-redis-1"), &redis_args(replica)), "redis-1");
    wait_until("the primary", Duration::from_secs(10), || redis_cli(primary, Some(PASSWORD), &["PING"]) == "PONG");
    assert!(redis_cli(primary, None, &["PING"]).contains("NOAUTH"), "a client without the password is refused");
    // Pod 1 started as a replica of pod 0 and authenticated to it (masterauth).
    wait_until("the replica's link", Duration::from_secs(15), || {
        redis_cli(replica, Some(PASSWORD), &["INFO", "replication"]).contains("master_link_status:up")
    });
    start(&mut entrypoint(&conf, &run_s, "sentinel", &[(ENTRYPOINT_ENV_SENTINEL_MASTER, "socketfleet".into())], &[]), "sentinel");
    // The Sentinel authenticates to the primary (auth-pass): it sees it up and finds the replica.
    wait_until("the Sentinel to see the primary and its replica", Duration::from_secs(20), || {
        let info = redis_cli(sentinel, Some(PASSWORD), &["INFO", "sentinel"]);
        info.contains("status=ok") && info.contains("slaves=1")
    });
    assert!(redis_cli(sentinel, None, &["INFO", "sentinel"]).contains("NOAUTH"), "the Sentinel asks for the password too");
    for p in &procs {
        let line = cmdline(p.child.id());
        assert!(!line.is_empty() && !line.contains(PASSWORD), "the password is on a command line: {line}");
    }
    for run in [&run0, &run_s] {
        let file = std::fs::read_dir(run).expect("run dir").next().expect("a runtime config").expect("entry").path();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).expect("meta").permissions());
        assert_eq!(mode & 0o077, 0, "{} is readable by others", file.display());
    }

    // Without a password the container refuses to start, saying where it comes from.
    let out = entrypoint(&conf, &dir("run-none"), "redis", &[("REDIS_PASSWORD", String::new())], &[])
        .stderr(Stdio::piped())
        .output()
        .expect("sh");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REDIS_PASSWORD is empty"));
}

fn cluster_fleet() -> socketfleet_api::crd::SocketFleet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "socketfleet.io/v1alpha1", "kind": "SocketFleet",
        "metadata": {"name": "t", "namespace": "demo", "uid": "u"}, "spec": {"redis": {"mode": "cluster", "replicasPerShard": 1}}
    }))
    .expect("fleet")
}

fn role(port: u16) -> String {
    redis_cli(port, Some(PASSWORD), &["ROLE"]).lines().next().unwrap_or_default().to_string()
}

/// `entrypoint.sh prestop` for the node on `port`; how long it took.
fn prestop(conf: &Path, port: u16) -> Duration {
    let started = Instant::now();
    let status = entrypoint(conf, &dir("run-prestop"), "prestop", &[("SF_REDIS_PORT", port.to_string())], &[]).status().expect("sh");
    assert!(status.success(), "prestop exits 0 whatever happens: a failing hook only delays the pod");
    started.elapsed()
}

#[test]
fn a_stopping_cluster_primary_hands_its_slots_to_its_replica_first() {
    let conf = dir("conf-cluster");
    std::fs::write(conf.join(ENTRYPOINT_FILE), ENTRYPOINT).expect("write");
    std::fs::write(conf.join("redis.conf"), redis_conf(&Ctx::new(&cluster_fleet()))).expect("write");
    let data = dir("cluster-data");
    let args: Vec<&str> = TEST_CLUSTER_ARGS.iter().chain(IN_MEMORY_ARGS).copied().collect();
    let nodes: Vec<(u16, Proc)> =
        (0..4).map(|_| start_anywhere(|port| data.join(port.to_string()), Some(PASSWORD), &args, free_cluster_port)).collect();
    let ports: Vec<u16> = nodes.iter().map(|(p, _)| *p).collect();
    for &p in &ports {
        wait_until("a node", Duration::from_secs(10), || redis_cli(p, Some(PASSWORD), &["PING"]) == "PONG");
    }
    let addrs: Vec<String> = ports[..3].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    create_cluster(&addrs, Some(PASSWORD), 0).expect("cluster create");
    let (primary, replica) = (ports[0], ports[3]);
    let primary_id = redis_cli(primary, Some(PASSWORD), &["CLUSTER", "MYID"]);
    redis_cli(replica, Some(PASSWORD), &["CLUSTER", "MEET", "127.0.0.1", &primary.to_string()]);
    wait_until("the fourth node joined", Duration::from_secs(15), || {
        redis_cli(replica, Some(PASSWORD), &["CLUSTER", "REPLICATE", &primary_id]) == "OK"
    });
    wait_until("the replica in sync", Duration::from_secs(20), || {
        redis_cli(primary, Some(PASSWORD), &["INFO", "replication"]).contains("state=online")
    });
    redis_cli(primary, Some(PASSWORD), &["SET", "k{a}", "v"]);

    // A replica's hook changes nothing.
    prestop(&conf, replica);
    assert_eq!((role(primary).as_str(), role(replica).as_str()), ("master", "slave"));

    // The primary's hook returns once the replica has taken over, well inside the grace.
    let took = prestop(&conf, primary);
    assert_eq!((role(primary).as_str(), role(replica).as_str()), ("slave", "master"), "handed over in {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let slots = redis_cli(replica, Some(PASSWORD), &["CLUSTER", "SHARDS"]);
    assert!(slots.contains(&replica.to_string()), "{slots}");
    eprintln!("MEASURE preStop handover {took:?}");

    // Now a primary without a connected replica: it stops as it is, at once.
    let took = prestop(&conf, ports[1]);
    assert_eq!(role(ports[1]), "master");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Pods of a cluster fleet as the StatefulSet makes them: each with the ConfigMap's files
/// (its data directory in place of /data), a data directory that outlives its container,
/// a private run directory.
struct PodDirs(Vec<(PathBuf, PathBuf, PathBuf)>);

impl PodDirs {
    fn new(name: &str, redis_conf: &str, n: usize) -> PodDirs {
        PodDirs(
            (0..n)
                .map(|i| {
                    let (conf, data) = (dir(&format!("{name}-conf-{i}")), dir(&format!("{name}-data-{i}")));
                    std::fs::write(conf.join(ENTRYPOINT_FILE), ENTRYPOINT).expect("write");
                    std::fs::write(conf.join("redis.conf"), redis_conf.replace("/data", &data.display().to_string())).expect("write");
                    (conf, data, dir(&format!("{name}-run-{i}")))
                })
                .collect(),
        )
    }

    /// The container of pod `ordinal` started on `port`, once it answers.
    fn start(&self, ordinal: usize, port: u16) -> Proc {
        let (conf, data, run) = &self.0[ordinal];
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-node-timeout",
            "1500",
            "--cluster-replica-validity-factor",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = [("SF_DATA_DIR", data.display().to_string())];
        let p = Proc::new(entrypoint(conf, run, "redis", &env, &args).spawn().expect("sh"), format!("redis-{ordinal}"));
        wait_until("a node", Duration::from_secs(10), || redis_cli(port, Some(PASSWORD), &["PING"]) == "PONG");
        p
    }
}

fn members(ports: &[u16]) -> Vec<socketfleet_operator::redis_cluster::Member> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| socketfleet_operator::redis_cluster::Member {
            name: format!("redis-{i}"),
            addr: format!("127.0.0.1:{p}"),
            ordinal: i,
        })
        .collect()
}

/// The operator's passes over 3 shards with a replica each until the cluster is whole.
async fn converge(members: Vec<socketfleet_operator::redis_cluster::Member>, what: &str) {
    use socketfleet_operator::redis_cluster::{Access, Layout, heal};
    let layout = Layout { shards: 3, replicas_per_shard: 1 };
    let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = heal(layout, &members, &access).await;
        if r.as_ref().is_ok_and(|r| r.converged && r.cluster_state == "ok") {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not converged: {r:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Without persistence, a primary killed and restarted before its replica was promoted
/// came back empty with its node id and slots (nodes.conf), and its replica then copied the
/// emptiness: 100 acknowledged keys were lost. Started by the entrypoint, it comes back as
/// a new node; the replica holding the data takes over, and no key is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restarted_without_persistence_never_wins_with_empty_data() {
    let redis_conf = redis_conf(&Ctx::new(&cluster_fleet()));
    assert!(redis_conf.contains("appendonly no"), "the case without persistence");
    let pods = PodDirs::new("empty", &redis_conf, 6);
    let ports: Vec<u16> = (0..6).map(|_| free_cluster_port()).collect();
    let mut procs: Vec<Proc> = ports.iter().enumerate().map(|(i, &p)| pods.start(i, p)).collect();
    let members = members(&ports);
    let converge = |what: &'static str| converge(members.clone(), what);
    converge("bootstrap").await;
    let primary = ports[0];
    let id_before = redis_cli(primary, Some(PASSWORD), &["CLUSTER", "MYID"]);
    // 100 keys in pod 0's slots, each acknowledged by its replica.
    let slot_of = |k: &str| redis_cli(primary, Some(PASSWORD), &["CLUSTER", "KEYSLOT", k]).parse::<u16>().expect("slot");
    let tag = (0..100).map(|i| format!("{{t{i}}}")).find(|t| slot_of(t) < 5461).expect("a tag in pod 0's slots");
    let keys: Vec<String> = (0..100).map(|i| format!("{tag}:{i}")).collect();
    let slot = slot_of(&tag);
    for k in &keys {
        assert_eq!(redis_cli(primary, Some(PASSWORD), &["SET", k, "v"]), "OK");
    }
    assert_eq!(redis_cli(primary, Some(PASSWORD), &["WAIT", "1", "5000"]), "1");

    // SIGKILL, and the container restarts at once (same pod: same address, same volume).
    procs.remove(0).kill();
    procs.insert(0, pods.start(0, primary));
    let id_after = redis_cli(primary, Some(PASSWORD), &["CLUSTER", "MYID"]);
    assert_ne!(id_after, id_before, "it came back as a new node, not as the empty owner of its old slots");
    converge("after the restart").await;
    let owner = ports
        .iter()
        .copied()
        .find(|p| redis_cli(*p, Some(PASSWORD), &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]) != "0" && role(*p) == "master")
        .expect("a primary holds the slot's keys");
    let kept = keys.iter().filter(|k| redis_cli(owner, Some(PASSWORD), &["GET", k]) == "v").count();
    assert_eq!(kept, 100, "every acknowledged key survived");
    assert_eq!(role(primary), "slave", "the restarted pod is a replica now");
    drop(procs);
}

/// With persistence, every pod of the fleet stopped at once (a node drained, a rollout of
/// all pods, a power cut) and started again on new addresses: the AOF and nodes.conf on
/// each pod's volume bring the same cluster back, every key with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_persistence_every_pod_restarted_at_once_keeps_every_key() {
    let mut fleet = cluster_fleet();
    fleet.spec.redis.persistence.enabled = true;
    let redis_conf = redis_conf(&Ctx::new(&fleet));
    assert!(redis_conf.contains("appendonly yes"), "the case with persistence");
    let pods = PodDirs::new("kept", &redis_conf, 6);
    let ports: Vec<u16> = (0..6).map(|_| free_cluster_port()).collect();
    let procs: Vec<Proc> = ports.iter().enumerate().map(|(i, &p)| pods.start(i, p)).collect();
    converge(members(&ports), "bootstrap").await;
    let ids: Vec<String> = ports.iter().map(|p| redis_cli(*p, Some(PASSWORD), &["CLUSTER", "MYID"])).collect();
    const KEYS: usize = 2_000;
    support::write_keys(ports[0], KEYS, 1).await;
    assert_eq!(support::readable_keys(ports[0], KEYS).await, KEYS);

    // Every container stopped at once as the kubelet stops them (SIGTERM: Redis writes
    // its AOF out), then started again, each on a new address.
    for p in &procs {
        let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
    }
    for p in &ports {
        wait_until("the node stopped", Duration::from_secs(15), || redis_cli(*p, Some(PASSWORD), &["PING"]) != "PONG");
    }
    drop(procs);
    let moved: Vec<u16> = (0..6).map(|_| free_cluster_port()).collect();
    let _procs: Vec<Proc> = moved.iter().enumerate().map(|(i, &p)| pods.start(i, p)).collect();
    let ids_after: Vec<String> = moved.iter().map(|p| redis_cli(*p, Some(PASSWORD), &["CLUSTER", "MYID"])).collect();
    assert_eq!(ids_after, ids, "each pod came back as the node it was");
    converge(members(&moved), "after the full restart").await;
    let readable = support::readable_keys(moved[0], KEYS).await;
    eprintln!("MEASURE full restart with persistence: {readable} of {KEYS} keys readable, node ids kept");
    assert_eq!(readable, KEYS, "every key came back from the volumes");
}
