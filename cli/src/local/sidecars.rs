//! Sidecar processes: started with the spec's settings, asked to drain over their admin
//! API (the same paced drain as in a pod), and counted for the autoscaler.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use std::net::SocketAddr;

use socketfleet_api::settings::{ENV_LOG, NodeName, SidecarSettings};

use socketfleet_api::admin::{DrainStatus, PATH_DRAIN, PATH_SHED, PATH_STATUS, ShedReply, SidecarStatus, shed_query};
use socketfleet_harness::wait::poll_until_async;
use socketfleet_plumbing::http_client;

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);
use socketfleet_harness::ports::try_free_port as free_port;

pub struct Sidecar {
    pub name: String,
    child: Child,
    pub ws_port: u16,
    pub admin_port: u16,
    pub api_port: u16,
    /// Told to drain: the balancer sends it no new clients.
    pub draining: bool,
    /// Draining because someone asked it directly (`POST /drain`): it refuses new clients
    /// too, so the balancer skips it, but it is replaced when it exits (`draining` is only
    /// for drains local mode asked for).
    pub drained_from_outside: bool,
    /// When local mode asked it to drain, and the connections it held then.
    pub drain_started: Option<(std::time::Instant, u64)>,
    /// The drain's progress as last read from its `/status`.
    pub last_drain: Option<DrainStatus>,
    /// When its drain's progress was last printed (at most once a second).
    pub drain_told: Option<std::time::Instant>,
}

/// The last warning or error the sidecar logged since `from` (its own start), as
/// `: <message>`, so that the cause of a failed start is on the CLI's line.
fn last_error(log: &std::path::Path, from: usize) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from..).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().rposition(|l| l.contains(" ERROR ") || l.contains(" WARN ") || l.starts_with("socketfleet-sidecar:"))
    else {
        return String::new();
    };
    // A log line is `<time>  LEVEL target: message`; the message is what a person needs,
    // with the lines that continue it (a configuration error lists each problem below).
    let first = lines[at].split_once(": ").map_or(lines[at], |(_, m)| m).trim();
    let rest: Vec<&str> = lines[at + 1..].iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    format!(" (last logged: {})", [vec![first], rest].concat().join(" "))
}

/// A sidecar's loopback ports: WebSocket, admin, app API.
pub type Ports = (u16, u16, u16);

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
    /// Starts one sidecar with the fleet's `settings`, its own name and loopback ports, and
    /// waits until it is ready. Ports are picked free, and one can be taken before the
    /// sidecar binds it: then it starts again on others (three attempts).
    pub async fn start(name: &str, settings: &SidecarSettings, log_dir: &std::path::Path) -> anyhow::Result<Sidecar> {
        Self::start_on(name, settings, log_dir, None).await
    }

    /// [`Sidecar::start`], on `ports` (ws, admin, app API) first when given: a sidecar
    /// started again keeps its addresses while they are free.
    pub async fn start_on(
        name: &str,
        settings: &SidecarSettings,
        log_dir: &std::path::Path,
        mut ports: Option<Ports>,
    ) -> anyhow::Result<Sidecar> {
        for _ in 0..2 {
            if let Some(s) = Self::try_start(name, settings, log_dir, ports.take()).await? {
                return Ok(s);
            }
        }
        Self::try_start(name, settings, log_dir, None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("sidecar {name}: its ports were taken three times"))
    }

    /// One attempt; `None` when a port it was given was taken meanwhile.
    async fn try_start(
        name: &str,
        settings: &SidecarSettings,
        log_dir: &std::path::Path,
        ports: Option<Ports>,
    ) -> anyhow::Result<Option<Sidecar>> {
        let (ws_port, admin_port, api_port) = match ports {
            Some(p) => p,
            None => (free_port()?, free_port()?, free_port()?),
        };
        // Appended: a sidecar started again keeps the log of the one before.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_dir.join(format!("{name}.log")))?;
        let log_before = log.metadata()?.len() as usize;
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let own = SidecarSettings {
            node_name: NodeName::Value(name.into()),
            ws_addr: loopback(ws_port),
            admin_addr: loopback(admin_port),
            app_api_addr: loopback(api_port),
            ..settings.clone()
        };
        let env = own.to_process_env().map_err(|e| anyhow::anyhow!("sidecar {name}: {e}"))?;
        let log_filter = std::env::var(ENV_LOG).unwrap_or_else(|_| "warn".into());
        let mut cmd = Command::new(binary()?);
        // In the guard's process group (`guard.rs`), as every child of local mode.
        socketfleet_harness::process::detached(cmd.as_std_mut());
        let child = cmd.env_clear().envs(env).env(ENV_LOG, log_filter).stdout(Stdio::null()).stderr(log).kill_on_drop(true).spawn()?;
        let mut s = Sidecar {
            name: name.into(),
            child,
            ws_port,
            admin_port,
            api_port,
            draining: false,
            drained_from_outside: false,
            drain_started: None,
            last_drain: None,
            drain_told: None,
        };
        let (addr, mut exited) = (s.admin_addr(), None);
        let ready = poll_until_async(Duration::from_secs(20), || {
            exited = s.child.try_wait().ok().flatten();
            let (gone, addr) = (exited.is_some(), addr.clone());
            // Ready when this sidecar says so (its `/status` names it), not whatever else
            // may answer on a port that was taken.
            let name = name.to_string();
            async move {
                gone || matches!(http_client::get_json::<SidecarStatus>(&addr, PATH_STATUS, ADMIN_TIMEOUT).await, Ok(st) if st.node == name && st.ready)
            }
        })
        .await;
        let log = log_dir.join(format!("{name}.log"));
        match exited {
            Some(_)
                if std::fs::read(&log)
                    .is_ok_and(|l| String::from_utf8_lossy(l.get(log_before..).unwrap_or_default()).contains("Address already in use")) =>
            {
                Ok(None)
            }
            Some(status) => anyhow::bail!("sidecar {name} exited ({status}){}; its log is {}", last_error(&log, log_before), log.display()),
            None if ready => Ok(Some(s)),
            None => {
                let why = s.status().await.and_then(|st| st.not_ready_reason).map(|r| format!(": {r}")).unwrap_or_default();
                anyhow::bail!("sidecar {name} was not ready in 20 s{why}{}; see {}", last_error(&log, log_before), log.display())
            }
        }
    }

    /// Starts the paced drain (`POST /drain`); `connections` is what it holds now.
    pub async fn drain(&mut self) {
        self.draining = true;
        let held = self.connections().await.unwrap_or(0);
        self.drain_started = Some((std::time::Instant::now(), held));
        let _ = http_client::post_json::<DrainStatus>(&self.admin_addr(), PATH_DRAIN, ADMIN_TIMEOUT).await;
    }

    /// Asks it to hand `count` connections off over `over` (rebalancing); how many it will.
    pub async fn shed(&self, count: u64, over: Duration) -> Option<u64> {
        let path = format!("{PATH_SHED}?{}", shed_query(count, over.as_millis() as u64));
        http_client::post_json::<ShedReply>(&self.admin_addr(), &path, ADMIN_TIMEOUT).await.ok().map(|r| r.shedding)
    }

    /// Waits (at most `limit`) for the process to exit; kills it after.
    pub async fn wait_exit(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }

    pub fn exited(&mut self) -> bool {
        self.exit_status().is_some()
    }

    /// How it exited, once it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn ports(&self) -> Ports {
        (self.ws_port, self.admin_port, self.api_port)
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Open client connections, from its `/status`.
    pub async fn connections(&self) -> Option<u64> {
        Some(self.status().await?.connections)
    }

    /// Its `/status`, or None when it does not answer.
    pub async fn status(&self) -> Option<SidecarStatus> {
        http_client::get_json(&self.admin_addr(), PATH_STATUS, ADMIN_TIMEOUT).await.ok()
    }

    fn admin_addr(&self) -> String {
        format!("127.0.0.1:{}", self.admin_port)
    }
}
