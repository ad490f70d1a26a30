//! redis-server nodes for tests, and `redis-cli`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::Proc;
use crate::wait::poll_until;

/// `redis-cli` against a loopback port, with a password when given; its trimmed output.
pub fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(p) = password {
        cmd.args(["-a", p]);
    }
    let out = cmd.args(args).output().expect("redis-cli runs (make deps installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts `redis-server --port <port> <args>` in `dir` and waits for PONG; `Err` when it
/// exits first (the port was taken) or is not answering after 10 s.
pub fn spawn(dir: &Path, port: u16, password: Option<&str>, args: &[&str]) -> Result<Proc, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]).arg("--dir").arg(dir);
    if let Some(p) = password {
        cmd.args(["--requirepass", p, "--masterauth", p]);
    }
    let child = cmd
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server does not start ({e}); make deps installs it"))?;
    let mut p = Proc::new(child, format!("redis:{port}"));
    let mut exited = None;
    let answered = poll_until(Duration::from_secs(10), || {
        exited = p.exited();
        exited.is_some() || redis_cli(port, password, &["PING"]) == "PONG"
    });
    match exited {
        Some(status) => Err(format!("redis-server on {port} exited ({status})")),
        None if answered => Ok(p),
        None => Err(format!("redis-server on {port} not answering after 10s")),
    }
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
