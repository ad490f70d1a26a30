//! A Redis Cluster of real `redis-server` processes as the operator's admin code sees it:
//! "pods" with ordinals, each a process with its own directory (its `nodes.conf`), that
//! can be stopped, lose their data, come back on a new address, be added and removed.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use socketfleet_operator::redis_cluster::{Access, Action, Layout, Member, Report, heal};

pub const PASSWORD: &str = "admin-test-password";

use socketfleet_harness::cluster_keys;
pub use socketfleet_harness::ports::free_cluster_port as free_port;
use socketfleet_harness::process::Proc;
use socketfleet_harness::redis::{IN_MEMORY_ARGS, TEST_CLUSTER_ARGS};

pub struct Pod {
    pub ordinal: usize,
    pub dir: PathBuf,
    pub port: u16,
    pub proc: Option<Proc>,
}

impl Pod {
    /// Starts the pod's redis-server on its port; when that port was taken meanwhile, on
    /// another free one (to Redis that is a pod back with a new address, which every test
    /// here heals anyway).
    pub fn start(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            match socketfleet_harness::redis::spawn(&self.dir, self.port, Some(PASSWORD), &[TEST_CLUSTER_ARGS, IN_MEMORY_ARGS].concat()) {
                Ok(p) => {
                    self.proc = Some(p);
                    return;
                }
                Err(e) => last = e,
            }
            self.port = free_port();
        }
        panic!("pod {} did not start: {last}", self.ordinal);
    }

    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub fn running(&self) -> bool {
        self.proc.is_some()
    }

    pub fn member(&self) -> Member {
        Member { name: format!("redis-{}", self.ordinal), addr: format!("127.0.0.1:{}", self.port), ordinal: self.ordinal }
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    socketfleet_harness::redis::redis_cli(port, Some(PASSWORD), args)
}

pub struct Cluster {
    pub layout: Layout,
    pub pods: Vec<Pod>,
    pub root: PathBuf,
}

impl Cluster {
    pub fn new(name: &str, layout: Layout) -> Cluster {
        let root = std::env::temp_dir().join(format!("sf-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pods =
            (0..layout.pods()).map(|i| Pod { ordinal: i, dir: root.join(format!("pod-{i}")), port: free_port(), proc: None }).collect();
        let mut c = Cluster { layout, pods, root };
        for p in &mut c.pods {
            p.start();
        }
        c
    }

    pub fn members(&self) -> Vec<Member> {
        self.pods.iter().filter(|p| p.running()).map(Pod::member).collect()
    }

    /// Runs passes until the cluster converges; returns every action taken and the last report.
    pub async fn converge(&self, what: &str) -> (Vec<Action>, Report) {
        let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut all = Vec::new();
        loop {
            let report = heal(self.layout, &self.members(), &access).await.expect("a pass runs");
            all.extend(report.actions.iter().cloned());
            // Every pod must agree, not just the anchor: gossip reaches them one by one.
            let all_ok = self.pods.iter().filter(|p| p.running()).all(|p| cli(p.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if report.converged && report.cluster_state == "ok" && all_ok {
                return (all, report);
            }
            assert!(Instant::now() < deadline, "{what}: not converged in 60 s; last report {report:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops pod `i` and deletes its data; returns the node id it had.
    pub fn lose(&mut self, i: usize) -> String {
        let id = cli(self.pods[i].port, &["CLUSTER", "MYID"]);
        self.pods[i].stop();
        let _ = std::fs::remove_dir_all(&self.pods[i].dir);
        id
    }

    /// Polls pod 0 with `args` until `ok` holds (at most 30 s).
    pub async fn wait_for(&self, what: &str, args: &[&str], ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok(&cli(self.pods[0].port, args)) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn node_ids(&self) -> Vec<String> {
        self.pods.iter().map(|p| cli(p.port, &["CLUSTER", "MYID"])).collect()
    }

    pub fn set(&self, key: &str, value: &str) {
        let port = self.pods[0].port;
        // `-c` follows MOVED to the key's node.
        assert_eq!(cli(port, &["-c", "SET", key, value]), "OK", "SET {key}");
    }

    pub fn get(&self, key: &str) -> String {
        let port = self.pods[0].port;
        cli(port, &["-c", "GET", key])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.pods {
            p.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn count(actions: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    actions.iter().filter(|a| pred(a)).count()
}

impl Cluster {
    /// The layout grows: pods up to the new count are started.
    pub fn grow(&mut self, layout: Layout) {
        for i in self.pods.len()..layout.pods() {
            let mut pod = Pod { ordinal: i, dir: self.root.join(format!("pod-{i}")), port: free_port(), proc: None };
            pod.start();
            self.pods.push(pod);
        }
        self.layout = layout;
    }

    /// Runs passes until the cluster converges on its layout; pods beyond it are removed,
    /// as the StatefulSet would remove them, once a pass says they hold nothing. Returns
    /// every action taken and the last report.
    pub async fn converge_resizing(&mut self, what: &str, limit: Duration) -> (Vec<Action>, Report) {
        let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
        let deadline = Instant::now() + limit;
        let mut all = Vec::new();
        loop {
            let report = heal(self.layout, &self.members(), &access).await.expect("a pass runs");
            all.extend(report.actions.iter().cloned());
            if report.leaving_busy == 0 && self.pods.len() > self.layout.pods() {
                self.pods.truncate(self.layout.pods());
            }
            let all_ok = self.pods.iter().filter(|p| p.running()).all(|p| cli(p.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if report.converged && report.cluster_state == "ok" && all_ok {
                return (all, report);
            }
            assert!(Instant::now() < deadline, "{what}: not converged in {limit:?}; last report {report:?}");
            if report.actions.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Slots each live primary owns, as pod 0 sees it, by port.
    pub fn slot_counts(&self) -> Vec<(u16, usize)> {
        let nodes = cli(self.pods[0].port, &["CLUSTER", "NODES"]);
        let mut out: Vec<(u16, usize)> = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let slots = f[8..]
                    .iter()
                    .filter(|r| !r.starts_with('['))
                    .map(|r| r.split_once('-').map_or(1, |(a, b)| b.parse::<usize>().unwrap_or(0) - a.parse::<usize>().unwrap_or(0) + 1))
                    .sum();
                (slots > 0).then_some((port, slots))
            })
            .collect();
        out.sort();
        out
    }

    fn any_port(&self) -> u16 {
        self.pods.iter().find(|p| p.running()).expect("a live pod").port
    }

    /// Writes `key:<i>` = `value:<i>` for `0..n`, acknowledged by every replica.
    pub async fn write_keys(&self, n: usize) {
        write_keys(self.any_port(), n, self.layout.replicas_per_shard).await
    }

    /// How many of `key:<i>` for `0..n` read back as `value:<i>`.
    pub async fn readable_keys(&self, n: usize) -> usize {
        readable_keys(self.any_port(), n).await
    }
}

/// Writes `key:<i>` = `value:<i>` for `0..n` into the cluster `port` belongs to, each
/// primary's share acknowledged by `replicas` replicas.
pub async fn write_keys(port: u16, n: usize, replicas: usize) {
    cluster_keys::write_keys(&format!("127.0.0.1:{port}"), Some(PASSWORD), n, replicas).await
}

/// How many of `key:<i>` for `0..n` read back as `value:<i>` from their slot's owner.
pub async fn readable_keys(port: u16, n: usize) -> usize {
    cluster_keys::readable_keys(&format!("127.0.0.1:{port}"), Some(PASSWORD), n).await
}

impl Cluster {
    /// [`Cluster::converge_resizing`] while pod `down` is away: it is started again (empty,
    /// on a new address, as a rescheduled pod without persistence) once the cluster has
    /// agreed it failed.
    pub async fn converge_resizing_with_return(&mut self, down: usize, limit: Duration) -> (Vec<Action>, Report) {
        let access = Access { password: Some(PASSWORD.into()), timeout: Duration::from_secs(2) };
        let deadline = Instant::now() + limit;
        let mut all = Vec::new();
        while !self.pods[down].running() {
            let report = heal(self.layout, &self.members(), &access).await.expect("a pass runs");
            all.extend(report.actions.iter().cloned());
            let any = self.pods.iter().find(|p| p.running()).expect("a live pod").port;
            if cli(any, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                let _ = std::fs::remove_dir_all(&self.pods[down].dir);
                self.pods[down].port = free_port();
                self.pods[down].start();
            }
            assert!(Instant::now() < deadline, "no failover of pod {down}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (more, report) = self.converge_resizing("after the kill", deadline.saturating_duration_since(Instant::now())).await;
        all.extend(more);
        (all, report)
    }
}
