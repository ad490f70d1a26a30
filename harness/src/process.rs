//! A child process that is killed when its handle drops, also when a test panics.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The process group that children started from now on join; 0 while none is set (they
/// stay in this process's group, as tests want).
static GROUP: AtomicU32 = AtomicU32::new(0);

/// Children started from now on (by [`crate::redis`] and by callers that use [`detached`])
/// join process group `pgid`: local mode's guard (`cli/src/local/guard.rs`) stops that
/// group when local mode dies.
pub fn join_group(pgid: u32) {
    GROUP.store(pgid, Ordering::Relaxed);
}

/// Readies `cmd` as a long-lived child: no stdin (a child in a background process group
/// may not read the terminal), and the process group set by [`join_group`], while its
/// leader lives (joining a group that no longer exists would fail the start).
pub fn detached(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let pgid = GROUP.load(Ordering::Relaxed);
    if pgid != 0 && std::path::Path::new(&format!("/proc/{pgid}")).exists() {
        cmd.process_group(pgid as i32);
    }
    cmd.stdin(std::process::Stdio::null())
}

pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn new(child: Child, name: impl Into<String>) -> Proc {
        Proc { child, name: name.into() }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM without blocking the async runtime; waits up to `timeout` for the exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of the text file at `path` (empty when it cannot be read): what a
/// failing test prints of a process's log.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
