//! Local mode's children stop with it, even when it is SIGKILLed (or crashes, or the OOM
//! killer picks it): nothing in a process runs after SIGKILL, so the stopping is done by a
//! guard outside it. The guard is a small shell started first, in a process group of its
//! own that every later child joins; its stdin is a pipe whose only writer is this
//! process. When this process ends by any means the kernel closes that writer, the
//! guard reads end-of-file, sends SIGTERM to the group (Redis exits, sidecars drain),
//! removes the run's folder unless logs are kept, and 5 s later SIGKILLs what is left,
//! itself included. On a normal exit the children are already stopped in order and the
//! guard is killed before it reads end-of-file.
//!
//! Their own group also keeps a terminal's Ctrl-C, which the terminal sends to its
//! foreground group, away from the children: local mode drains and stops them in order.
//! A child in a background group must not read the terminal (it would be stopped by
//! SIGTTIN), so children get no stdin (`socketfleet_harness::process::detached`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// What the guard runs, as `sh -c`. It ignores SIGTERM (its own group's) until the end;
/// `$SF_GUARD_REMOVE`, when set, is the folder to remove (in the environment, not the
/// command line, where a search for processes naming the folder would find the guard).
const SCRIPT: &str = r#"trap '' TERM
while read -r _; do :; done
kill -TERM 0
if [ -n "$SF_GUARD_REMOVE" ]; then sleep 1; rm -rf -- "$SF_GUARD_REMOVE"; fi
sleep 5
kill -KILL 0"#;

/// The running guard: dropping it (a normal exit) kills it without touching the group.
pub struct Guard {
    shell: Child,
    /// Held open for this process's life; its closing is the guard's signal.
    _writer: std::io::PipeWriter,
}

impl Guard {
    /// Starts the guard and makes every child started from now on (Redis, Sentinels,
    /// sidecars) join its process group. `remove`: the run's folder, unless it is kept.
    pub fn start(remove: Option<&Path>) -> anyhow::Result<Guard> {
        // Both ends close on exec: only the guard's stdin (a copy made for it) and this
        // process hold the pipe, so no other child can keep it open after this process.
        let (reader, writer) = std::io::pipe()?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(SCRIPT).stdin(reader).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        if let Some(dir) = remove {
            cmd.env("SF_GUARD_REMOVE", dir);
        }
        let shell = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start the guard that stops local mode's processes (sh): {e}"))?;
        socketfleet_harness::process::join_group(shell.id());
        Ok(Guard { shell, _writer: writer })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}
