//! The Redis and Sentinel containers' entrypoint (`operator/src/children/redis-entrypoint.sh`,
//! shipped in the fleet's ConfigMap) run with `sh` against real `redis-server` and
//! `redis-sentinel` processes: the password authenticates clients, replicas and Sentinels,
//! and appears on no command line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socketfleet_operator::children::redis::{
    ENTRYPOINT, ENTRYPOINT_ENV_ANNOUNCE_HOST, ENTRYPOINT_ENV_CONF_DIR, ENTRYPOINT_ENV_PRIMARY_HOST, ENTRYPOINT_ENV_PRIMARY_PORT,
    ENTRYPOINT_ENV_RUN_DIR, ENTRYPOINT_ENV_SENTINEL_MASTER, ENTRYPOINT_FILE, redis_conf,
};
use socketfleet_operator::children::{Ctx, build};

const PASSWORD: &str = "entrypoint-test-password-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Kills what it started, whatever the test's outcome.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(p) = password {
        cmd.args(["-a", p]);
    }
    let out = cmd.args(args).output().expect("redis-cli runs (make deps installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
    let mut procs = Procs(Vec::new());
    let redis_args = |port: u16| vec!["--port".to_string(), port.to_string(), "--bind".into(), "127.0.0.1".into()];
    let pod = |host: &str| {
        vec![
            ("HOSTNAME", host.to_string()),
            (ENTRYPOINT_ENV_PRIMARY_HOST, "127.0.0.1".to_string()),
            (ENTRYPOINT_ENV_PRIMARY_PORT, primary.to_string()),
        ]
    };
    let (run0, run1, run_s) = (dir("run0"), dir("run1"), dir("runs"));
    procs.0.push(entrypoint(&conf, &run0, "redis", &pod("t-redis-0"), &redis_args(primary)).spawn().expect("sh"));
    procs.0.push(entrypoint(&conf, &run1, "redis", &pod("t-redis-1"), &redis_args(replica)).spawn().expect("sh"));
    wait_until("the primary", Duration::from_secs(10), || cli(primary, Some(PASSWORD), &["PING"]) == "PONG");
    assert!(cli(primary, None, &["PING"]).contains("NOAUTH"), "a client without the password is refused");
    // Pod 1 started as a replica of pod 0 and authenticated to it (masterauth).
    wait_until("the replica's link", Duration::from_secs(15), || {
        cli(replica, Some(PASSWORD), &["INFO", "replication"]).contains("master_link_status:up")
    });
    procs
        .0
        .push(entrypoint(&conf, &run_s, "sentinel", &[(ENTRYPOINT_ENV_SENTINEL_MASTER, "socketfleet".into())], &[]).spawn().expect("sh"));
    // The Sentinel authenticates to the primary (auth-pass): it sees it up and finds the replica.
    wait_until("the Sentinel to see the primary and its replica", Duration::from_secs(20), || {
        let info = cli(sentinel, None, &["INFO", "sentinel"]);
        info.contains("status=ok") && info.contains("slaves=1")
    });
    for child in &procs.0 {
        let line = cmdline(child.id());
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
