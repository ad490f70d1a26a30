//! A Sentinel set started the way the fleet's pods start it: every Redis and Sentinel
//! through the fleet's entrypoint (`operator/src/children/redis-entrypoint.sh`) with the
//! fleet's redis.conf, on loopback. Shared by the operator's supervision test and the
//! sidecar's L1 test (`#[path]`), so both run the same set.

#![allow(dead_code)] // each test crate that includes it uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use socketfleet_harness::ports::free_port;
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::redis_cli;
use socketfleet_harness::wait::wait_until;
use socketfleet_operator::children::redis::{
    ENTRYPOINT, ENTRYPOINT_ENV_ANNOUNCE_HOST, ENTRYPOINT_ENV_CONF_DIR, ENTRYPOINT_ENV_PRIMARY_HOST, ENTRYPOINT_ENV_PRIMARY_PORT,
    ENTRYPOINT_ENV_RUN_DIR, ENTRYPOINT_ENV_SENTINEL_MASTER, ENTRYPOINT_ENV_SENTINEL_PEERS, ENTRYPOINT_FILE,
};

pub const MASTER: &str = "socketfleet";

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

pub struct SentinelSet {
    pub password: String,
    pub redis_ports: Vec<u16>,
    pub sentinel_ports: Vec<u16>,
    pub redis: Vec<Proc>,
    pub sentinels: Vec<Proc>,
    redis_dirs: Vec<PodDirs>,
    /// The Sentinels' `host:port`, space-separated (the entrypoint's SF_SENTINEL_PEERS).
    pub peers: String,
}

impl SentinelSet {
    /// `pods` Redis pods (pod 0 the first primary) and three Sentinels with a 3 s
    /// down-after, once every replica is in sync and every Sentinel sees the others.
    /// (At 1 s, a Sentinel on a loaded CI machine once marked the primary it had just
    /// switched to down before its first reply, and failed over a second time.)
    pub fn start(root: &Path, fleet_conf: &str, pods: usize, password: &str) -> SentinelSet {
        let redis_ports: Vec<u16> = (0..pods).map(|_| free_port()).collect();
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers = sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(" ");
        let redis_dirs = (0..pods)
            .map(|i| {
                let data = root.join(format!("redis-{i}-data"));
                std::fs::create_dir_all(&data).expect("data");
                pod_dirs(root, &format!("redis-{i}"), &[("redis.conf", fleet_conf.replace("/data", &data.display().to_string()))])
            })
            .collect();
        let mut set = SentinelSet {
            password: password.into(),
            redis_ports,
            sentinel_ports,
            redis: Vec::new(),
            sentinels: Vec::new(),
            redis_dirs,
            peers,
        };
        set.redis = (0..pods).map(|i| set.start_redis(i)).collect();
        for p in &set.redis_ports[1..] {
            wait_until("a replica in sync", Duration::from_secs(30), || {
                redis_cli(*p, Some(password), &["INFO", "replication"]).contains("master_link_status:up")
            });
        }
        // The ConfigMap's sentinel.conf names pod 0 by DNS; here pod 0 is on loopback.
        let sentinel_conf = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {} 2\nsentinel down-after-milliseconds {MASTER} 3000\nsentinel failover-timeout {MASTER} 5000\n",
            set.redis_ports[0]
        );
        set.sentinels = (0..3)
            .map(|i| {
                let dirs = pod_dirs(root, &format!("sentinel-{i}"), &[("sentinel.conf", sentinel_conf.clone())]);
                let env = [(ENTRYPOINT_ENV_SENTINEL_PEERS, set.peers.clone())];
                let args = ["--port".into(), set.sentinel_ports[i].to_string(), "--bind".into(), "127.0.0.1".into()];
                set.entrypoint(&dirs, "sentinel", &env, &args)
            })
            .collect();
        for &s in &set.sentinel_ports {
            wait_until("a Sentinel that sees its peers and the replicas", Duration::from_secs(30), || {
                let replicas = redis_cli(s, Some(password), &["SENTINEL", "replicas", MASTER]);
                let peers = redis_cli(s, Some(password), &["SENTINEL", "sentinels", MASTER]);
                replicas.lines().filter(|l| *l == "flags").count() == pods - 1 && peers.lines().filter(|l| *l == "flags").count() == 2
            });
        }
        set
    }

    /// Its output is appended to `<run dir>.log`, kept for a failing test.
    fn entrypoint(&self, dirs: &PodDirs, role: &str, env: &[(&str, String)], args: &[String]) -> Proc {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dirs.run.with_extension("log")).expect("log");
        let mut cmd = Command::new("sh");
        cmd.arg(dirs.conf.join(ENTRYPOINT_FILE))
            .arg(role)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REDIS_PASSWORD", &self.password)
            .env(ENTRYPOINT_ENV_CONF_DIR, &dirs.conf)
            .env(ENTRYPOINT_ENV_RUN_DIR, &dirs.run)
            .env(ENTRYPOINT_ENV_ANNOUNCE_HOST, "127.0.0.1")
            .env(ENTRYPOINT_ENV_SENTINEL_MASTER, MASTER)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        Proc::new(cmd.spawn().expect("sh"), role)
    }

    /// Redis pod `i`'s container, started (again) as the StatefulSet would.
    pub fn start_redis(&self, i: usize) -> Proc {
        let env = [
            ("HOSTNAME", format!("t-redis-{i}")),
            (ENTRYPOINT_ENV_PRIMARY_HOST, "127.0.0.1".to_string()),
            (ENTRYPOINT_ENV_PRIMARY_PORT, self.redis_ports[0].to_string()),
            (ENTRYPOINT_ENV_SENTINEL_PEERS, self.peers.clone()),
            ("SF_REDIS_PORT", self.redis_ports[i].to_string()),
        ];
        let args = ["--port".into(), self.redis_ports[i].to_string(), "--bind".into(), "127.0.0.1".into()];
        self.entrypoint(&self.redis_dirs[i], "redis", &env, &args)
    }

    /// The primary's port as Sentinel `sentinel` names it.
    pub fn primary_port(&self, sentinel: usize) -> Option<u16> {
        let reply = redis_cli(self.sentinel_ports[sentinel], Some(&self.password), &["SENTINEL", "get-master-addr-by-name", MASTER]);
        reply.lines().nth(1)?.parse().ok()
    }

    pub fn sentinel_cli(&self, sentinel: usize, args: &[&str]) -> String {
        redis_cli(self.sentinel_ports[sentinel], Some(&self.password), args)
    }
}
