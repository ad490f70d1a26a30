//! Sidecar processes: started with the spec's settings, asked to drain over their admin
//! API (the same paced drain as in a pod), and counted for the autoscaler.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::http::{metric, request};
use super::ports::free_port;

pub struct Sidecar {
    pub name: String,
    child: Child,
    pub ws_port: u16,
    pub admin_port: u16,
    pub api_port: u16,
    /// Told to drain: the balancer sends it no new clients.
    pub draining: bool,
}

/// The sidecar binary: next to this one (`target/release/` after `cargo build --release`).
pub fn binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let bin = here.with_file_name("socketfleet-sidecar");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p socketfleet-sidecar` (make demo does)",
        bin.display()
    );
    Ok(bin)
}

impl Sidecar {
    /// Starts one sidecar with `env` (besides its own name and ports) and waits until ready.
    pub async fn start(name: &str, env: &[(String, String)], log_dir: &std::path::Path) -> anyhow::Result<Sidecar> {
        let (ws_port, admin_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let child = Command::new(binary()?)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SF_NODE_NAME", name)
            .env("SF_WS_ADDR", format!("127.0.0.1:{ws_port}"))
            .env("SF_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("SF_APP_API_ADDR", format!("127.0.0.1:{api_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let mut s = Sidecar { name: name.into(), child, ws_port, admin_port, api_port, draining: false };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((200, _)) = request(admin_port, "GET", "/ready").await {
                return Ok(s);
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                anyhow::bail!("sidecar {name} exited ({status}); its log is {}", log_dir.join(format!("{name}.log")).display());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "sidecar {name} was not ready in 20 s; see {}",
                log_dir.join(format!("{name}.log")).display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the paced drain (`POST /drain`).
    pub async fn drain(&mut self) {
        self.draining = true;
        let _ = request(self.admin_port, "POST", "/drain").await;
    }

    /// Waits (at most `limit`) for the process to exit; kills it after.
    pub async fn wait_exit(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Open client connections, from its metrics.
    pub async fn connections(&self) -> Option<u64> {
        let (_, body) = request(self.admin_port, "GET", "/metrics").await?;
        metric(&body, "socketfleet_sidecar_connections").map(|v| v as u64)
    }
}
