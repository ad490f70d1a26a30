//! redis-server nodes for tests, and `redis-cli`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::Proc;
use crate::wait::{poll_until, poll_until_async};

/// A node that keeps nothing on disk.
pub const IN_MEMORY_ARGS: &[&str] = &["--save", "", "--appendonly", "no"];

/// A Redis Cluster node for tests: fast failure detection, and a replica always allowed to
/// take over (the validity check misjudges a freshly created cluster's replicas as stale).
pub const TEST_CLUSTER_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1500",
    "--cluster-replica-validity-factor",
    "0",
];

/// `redis-cli` against a loopback port, with a password when given; its trimmed output.
/// Bounded by coreutils' `timeout` (30 s): a listener that is not Redis accepts and never
/// answers.
pub fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "redis-cli", "-h", "127.0.0.1", "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(p) = password {
        // From the environment, not the command line, where `ps` would show it.
        cmd.env("REDISCLI_AUTH", p);
    }
    let out = crate::wait::off_worker(|| cmd.args(args).output()).expect("redis-cli runs (make deps installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn launch(dir: &Path, port: u16, password: Option<&str>, args: &[&str]) -> Result<Proc, String> {
    // Absolute: redis-server changes into `--dir` as it reads it, and a relative
    // `--logfile` is then looked for from there (`OUT=target/bench/x` made every node of
    // the reshard bench exit at once).
    let dir = &std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new("redis-server");
    if let Some(p) = password {
        // In a file of the node's own (the config file must be the first argument), not on
        // the command line, where `ps` would show it.
        let conf = dir.join("auth.conf");
        write_private(&conf, &format!("requirepass \"{p}\"\nmasterauth \"{p}\"\n"))?;
        cmd.arg(&conf);
    }
    // The log in the node's directory: a test that fails prints it (`process::log_tail`).
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]).arg("--dir").arg(dir).arg("--logfile").arg(dir.join(LOG_FILE));
    let child = crate::process::detached(&mut cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server does not start ({e}); install Redis 7 (make deps does it on Debian)"))?;
    Ok(Proc::new(child, format!("redis:{port}")))
}

/// The log file of a node started here, in its directory.
pub const LOG_FILE: &str = "redis.log";

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`redis_cli`] without blocking the runtime.
pub async fn redis_cli_async(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    // Bounded: a listener that is not Redis accepts and never answers.
    match tokio::time::timeout(Duration::from_secs(2), cmd.args(args).kill_on_drop(true).output()).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => String::new(),
    }
}

/// Whether `INFO server` was answered by process `pid`. Not just any answer: when this
/// node could not bind its port, another test's node there (same password) answers too,
/// and a test once built its cluster on a node of another test's cluster that way.
fn is_process(info: &str, pid: u32) -> bool {
    let ours = format!("process_id:{pid}");
    info.lines().any(|l| l.trim_end() == ours)
}

/// Starts `redis-server --port <port> <args>` in `dir` and waits until it answers; `Err` when it
/// exits first (the port was taken) or is not answering after 10 s.
pub fn spawn(dir: &Path, port: u16, password: Option<&str>, args: &[&str]) -> Result<Proc, String> {
    let mut p = launch(dir, port, password, args)?;
    let mut exited = None;
    let pid = p.child.id();
    let answered = poll_until(Duration::from_secs(10), || {
        exited = p.exited();
        exited.is_some() || is_process(&redis_cli(port, password, &["INFO", "server"]), pid)
    });
    match exited {
        Some(status) => Err(format!("redis-server on {port} exited ({status})")),
        None if answered => Ok(p),
        None => Err(format!("redis-server on {port} not answering after 10s")),
    }
}

/// `redis-cli --cluster create` over `addrs` with `replicas` replicas per primary; the
/// output when it failed.
pub fn create_cluster(addrs: &[String], password: Option<&str>, replicas: usize) -> Result<(), String> {
    let mut cmd = Command::new("redis-cli");
    if let Some(p) = password {
        cmd.env("REDISCLI_AUTH", p);
    }
    cmd.args(["--no-auth-warning", "--cluster", "create"]).args(addrs).args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
    let out = crate::wait::off_worker(|| cmd.output()).map_err(|e| format!("redis-cli: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stdout).into_owned()) }
}

/// Starts redis-server on a port `pick` chooses, choosing again when it could not start
/// there: a free port can be taken (by another test process, or as some connection's source
/// port) between the pick and redis-server's bind, which once failed CI. `dir_for` names
/// the node's directory for a port.
pub fn start_anywhere(
    dir_for: impl Fn(u16) -> std::path::PathBuf,
    password: Option<&str>,
    args: &[&str],
    pick: fn() -> u16,
) -> (u16, Proc) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = pick();
        match spawn(&dir_for(port), port, password, args) {
            Ok(p) => return (port, p),
            Err(e) => last = e,
        }
    }
    panic!("redis-server did not start on 5 ports; the last: {last}");
}

/// [`spawn`] for async callers: waits on the runtime's timer, never on a worker thread.
pub async fn spawn_async(dir: &Path, port: u16, password: Option<&str>, args: &[&str]) -> Result<Proc, String> {
    let mut p = launch(dir, port, password, args)?;
    let mut exited = None;
    let password = password.map(str::to_string);
    let pid = p.child.id();
    let answered = poll_until_async(Duration::from_secs(10), || {
        exited = p.exited();
        let (gone, password) = (exited.is_some(), password.clone());
        async move { gone || is_process(&redis_cli_async(port, password.as_deref(), &["INFO", "server"]).await, pid) }
    })
    .await;
    match exited {
        Some(status) => Err(format!("redis-server on {port} exited ({status})")),
        None if answered => Ok(p),
        None => Err(format!("redis-server on {port} not answering after 10s")),
    }
}

/// [`start_anywhere`] for async callers; `Err` with the last reason after 5 ports.
pub async fn start_anywhere_async(
    dir_for: impl Fn(u16) -> std::path::PathBuf,
    password: Option<&str>,
    args: &[&str],
    pick: fn() -> std::io::Result<u16>,
) -> Result<(u16, Proc), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let port = pick().map_err(|e| e.to_string())?;
        match spawn_async(&dir_for(port), port, password, args).await {
            Ok(p) => return Ok((port, p)),
            Err(e) => last = e,
        }
    }
    Err(format!("redis-server did not start on 5 ports; the last: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_ours_only_when_it_names_our_process() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\nprocess_supervised:no\r\n";
        assert!(is_process(info, 4242));
        assert!(!is_process(info, 424), "another process");
        assert!(!is_process(info, 42421), "another process");
        assert!(!is_process("", 4242), "no answer");
    }

    #[test]
    fn a_node_in_a_relative_directory_starts() {
        // In the workspace's (ignored) target directory, beside this crate's; a path that
        // climbs to the root first would resolve the same from anywhere.
        let relative = std::path::PathBuf::from(format!("../target/sf-harness-relative-{}", std::process::id()));
        let abs = std::env::current_dir().expect("cwd").join(&relative);
        let port = crate::ports::free_port();
        let mut node = spawn(&relative, port, Some("pw"), &["--save", ""]).expect("starts");
        assert_eq!(redis_cli(port, Some("pw"), &["PING"]), "PONG");
        assert!(abs.join(LOG_FILE).exists(), "its log is in its directory");
        node.kill();
        let _ = std::fs::remove_dir_all(&abs);
    }

    #[tokio::test]
    async fn a_node_whose_port_is_taken_starts_elsewhere() {
        // Hold one port so that the first pick fails the way a race would.
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken = held.local_addr().expect("addr").port();
        static TAKEN: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        TAKEN.store(taken, std::sync::atomic::Ordering::SeqCst);
        static PICKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        fn pick() -> std::io::Result<u16> {
            if PICKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Ok(TAKEN.load(std::sync::atomic::Ordering::SeqCst))
            } else {
                crate::ports::try_free_port()
            }
        }
        let dir = std::env::temp_dir().join(format!("sf-harness-{}", std::process::id()));
        let (port, mut node) =
            start_anywhere_async(|p| dir.join(p.to_string()), Some("pw"), &["--save", ""], pick).await.expect("started elsewhere");
        assert_ne!(port, taken);
        assert_eq!(PICKS.load(std::sync::atomic::Ordering::SeqCst), 2, "one retry");
        assert_eq!(redis_cli(port, Some("pw"), &["PING"]), "PONG");
        node.kill();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
