//! `socketfleet local <fleet.yaml>`: the fleet a `SocketFleet` describes, on this machine.
//!
//! Real `redis-server` processes in the spec's layout ([`redis`]), the spec's number of
//! sidecars with its settings ([`sidecars`]), and a load balancer on one port that also
//! serves the demo pages ([`balancer`]). Scaling follows the spec: with
//! `autoscaling.enabled` the number of sidecars follows live connection counts (target per
//! pod, min/max, the scale-down stabilisation); `+` and `-` on stdin scale by hand. A
//! sidecar going away drains like a pod: clients get `reconnect`, come back through the
//! balancer to another sidecar and resume their sessions. Ctrl-C drains every sidecar and
//! stops everything; a second Ctrl-C stops at once. No process outlives this one.

pub mod balancer;
pub mod redis;
pub mod sidecars;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketfleet_api::crd::{AuthMode, SocketFleet};
use socketfleet_api::settings::{Auth, Secret, SidecarSettings};
use tokio::io::AsyncBufReadExt;

use balancer::{Backend, Backends, Site};
use redis::LocalRedis;
use sidecars::Sidecar;

/// Settings of a local run besides the fleet file.
pub struct Options {
    pub port: u16,
    pub www: PathBuf,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// The sidecars' settings from the spec (the same type and rules the operator writes a
/// pod's env from); each sidecar then gets its own name and ports.
fn sidecar_settings(
    fleet: &SocketFleet,
    redis: &LocalRedis,
    jwt_secret: Option<&str>,
    resume_key: &str,
) -> anyhow::Result<SidecarSettings> {
    let spec = &fleet.spec;
    let auth = match spec.auth.mode {
        AuthMode::Hs256 => Auth::Hs256(Secret::Value(jwt_secret.unwrap_or_default().into())),
        AuthMode::Rs256 => {
            let file = std::env::var("SOCKETFLEET_JWT_PUBLIC_KEY_FILE").map_err(|_| {
                anyhow::anyhow!(
                    "auth.mode: rs256 reads a Secret in Kubernetes; locally, set SOCKETFLEET_JWT_PUBLIC_KEY_FILE to the PEM file"
                )
            })?;
            Auth::Rs256 { public_key_file: file.into() }
        }
        AuthMode::None => Auth::None,
    };
    let mut s = SidecarSettings::from_spec(spec, auth, redis.sidecar.clone());
    s.resume_key = Some(Secret::Value(resume_key.into()));
    Ok(s)
}

/// The HS256 secret: generated unless the spec references a Secret, which locally comes
/// from `SOCKETFLEET_JWT_SECRET`.
fn jwt_secret(fleet: &SocketFleet) -> anyhow::Result<(Option<String>, bool)> {
    match (&fleet.spec.auth.mode, &fleet.spec.auth.jwt_secret_ref) {
        (AuthMode::Hs256, None) => Ok((Some(random_hex(32)), true)),
        (AuthMode::Hs256, Some(r)) => Ok((
            Some(std::env::var("SOCKETFLEET_JWT_SECRET").map_err(|_| {
                anyhow::anyhow!("auth.jwtSecretRef names Secret {}; locally, put the secret in SOCKETFLEET_JWT_SECRET", r.name)
            })?),
            false,
        )),
        _ => Ok((None, false)),
    }
}

/// The running sidecars and how many are wanted.
struct Gateway {
    sidecars: Vec<Sidecar>,
    started: usize,
    settings: SidecarSettings,
    dir: PathBuf,
    backends: Arc<Backends>,
    drain_limit: Duration,
}

impl Gateway {
    fn publish(&self) {
        self.backends.set(
            self.sidecars
                .iter()
                .map(|s| Backend {
                    name: s.name.clone(),
                    ws_port: s.ws_port,
                    admin_port: s.admin_port,
                    api_port: s.api_port,
                    draining: s.draining,
                })
                .collect(),
        );
    }

    fn serving(&self) -> usize {
        self.sidecars.iter().filter(|s| !s.draining).count()
    }

    async fn add(&mut self) -> anyhow::Result<()> {
        let name = format!("sidecar-{}", self.started);
        self.started += 1;
        let s = Sidecar::start(&name, &self.settings, &self.dir).await?;
        println!(
            "  + {name}  ws://127.0.0.1:{}/ws  metrics http://127.0.0.1:{}/metrics  app API http://127.0.0.1:{}",
            s.ws_port, s.admin_port, s.api_port
        );
        self.sidecars.push(s);
        self.publish();
        Ok(())
    }

    /// Drains the serving sidecar with the fewest connections: the cheapest to move.
    async fn remove_one(&mut self) {
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in self.sidecars.iter().enumerate().filter(|(_, s)| !s.draining) {
            let c = s.connections().await.unwrap_or(0);
            if best.is_none_or(|(_, b)| c < b) {
                best = Some((i, c));
            }
        }
        let Some((i, conns)) = best else { return };
        let s = &mut self.sidecars[i];
        println!("  - {} draining: its {conns} clients move to the others", s.name);
        s.drain().await;
        self.publish();
    }

    /// Forgets sidecars whose drain finished.
    fn reap(&mut self) {
        let before = self.sidecars.len();
        self.sidecars.retain_mut(|s| !s.exited());
        if self.sidecars.len() != before {
            self.publish();
        }
    }

    async fn connections(&self) -> u64 {
        let mut total = 0;
        for s in &self.sidecars {
            total += s.connections().await.unwrap_or(0);
        }
        total
    }

    async fn scale_to(&mut self, n: usize) -> anyhow::Result<()> {
        while self.serving() < n {
            self.add().await?;
        }
        while self.serving() > n {
            self.remove_one().await;
        }
        Ok(())
    }

    /// Drains every sidecar at once (each paces its own clients) and waits.
    async fn drain_all(&mut self) {
        for s in self.sidecars.iter_mut().filter(|s| !s.draining) {
            s.drain().await;
        }
        self.publish();
        for s in &mut self.sidecars {
            s.wait_exit(self.drain_limit).await;
        }
    }

    async fn kill_all(&mut self) {
        for s in &mut self.sidecars {
            s.kill().await;
        }
    }
}

/// The autoscaler's rule, from the spec: pods for the connections, within min..max.
pub fn wanted_for(connections: u64, target: i32, min: i32, max: i32) -> usize {
    let need = connections.div_ceil(target.max(1) as u64) as i64;
    need.clamp(min as i64, max.max(min) as i64) as usize
}

/// Ctrl-C and SIGTERM (a supervisor's, `kill`'s, a test harness's) both stop the fleet the
/// same way: the first drains, the second stops at once.
fn stop_signals() -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut sig = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move { while sig.recv().await.is_some() && tx.send(()).is_ok() {} });
    }
    Ok(rx)
}

/// Runs the fleet until Ctrl-C or SIGTERM.
pub async fn run(fleet: SocketFleet, opts: Options) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await.map_err(|e| {
        anyhow::anyhow!("port {} is busy ({e}); pass --port <another> (make demo: DEMO_PORT=<another> make demo)", opts.port)
    })?;
    // `--port 0` picks a free port: say the one really bound.
    let port = listener.local_addr()?.port();
    sidecars::binary()?;
    let dir = redis::work_dir()?;
    let spec = fleet.spec.clone();
    println!("starting {} ({:?} Redis)...", fleet.metadata.name.clone().unwrap_or_default(), spec.redis.mode);
    let mut redis = redis::start(&spec.redis, &dir, &random_hex(16)).await?;
    println!("  {}", redis.summary);
    let (secret, generated) = jwt_secret(&fleet)?;
    let settings = sidecar_settings(&fleet, &redis, secret.as_deref(), &random_hex(32))?;
    let backends = Arc::new(Backends::default());
    let drain_limit = spec.drain.timeout.as_duration() + Duration::from_secs(5);
    let mut gateway = Gateway { sidecars: Vec::new(), started: 0, settings, dir: dir.clone(), backends: backends.clone(), drain_limit };
    let (min, max) = (spec.gateway.replicas.min, spec.gateway.replicas.max);
    let mut wanted = spec.gateway.replicas.count.unwrap_or(min).clamp(min, max.max(min)) as usize;
    gateway.scale_to(wanted).await?;
    let site =
        Arc::new(Site { www: opts.www.clone(), jwt_secret: secret.clone().filter(|_| generated), auth_mode: spec.auth.mode.as_str() });
    tokio::spawn(balancer::serve(listener, backends, site));

    println!("\nSocketFleet is running locally:  http://127.0.0.1:{}/", port);
    println!("  clients connect to ws://127.0.0.1:{}/ws (the balancer picks a sidecar)", port);
    if generated {
        println!("  demo tokens: http://127.0.0.1:{}/token?user=<name> (HS256 secret generated for this run)", port);
    }
    if spec.autoscaling.enabled {
        println!("  autoscaling: {} connections per sidecar, {min}..{max} sidecars", spec.autoscaling.target_connections_per_pod);
    }
    println!("  type + or - and Enter to add or drain a sidecar; Ctrl-C drains and stops everything (twice: at once)");
    println!("  files and logs: {}\n", dir.display());

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let stabilization = spec.autoscaling.scale_down_stabilization.as_duration();
    let mut low_since: Option<Instant> = None;
    let mut stop = stop_signals()?;
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(l)) if l.trim() == "+" => { wanted = (wanted + 1).min(max as usize); gateway.scale_to(wanted).await?; }
                Ok(Some(l)) if l.trim() == "-" => { wanted = wanted.saturating_sub(1).max(min as usize); gateway.scale_to(wanted).await?; }
                Ok(Some(_)) => println!("  + adds a sidecar, - drains one (within {min}..{max}); now {wanted}"),
                _ => stdin_open = false,
            },
            _ = tick.tick() => {
                gateway.reap();
                if spec.autoscaling.enabled {
                    let conns = gateway.connections().await;
                    let want = wanted_for(conns, spec.autoscaling.target_connections_per_pod, min, max);
                    if want > wanted {
                        println!("  autoscaler: {conns} connections want {want} sidecars");
                        wanted = want;
                        low_since = None;
                        gateway.scale_to(wanted).await?;
                    } else if want < wanted {
                        let since = *low_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= stabilization {
                            println!("  autoscaler: {conns} connections want {want} sidecars for {stabilization:?}");
                            wanted -= 1;
                            low_since = None;
                            gateway.scale_to(wanted).await?;
                        }
                    } else {
                        low_since = None;
                    }
                }
            }
        }
    }
    println!("\ndraining {} sidecars (Ctrl-C again to stop at once)...", gateway.sidecars.len());
    tokio::select! {
        _ = gateway.drain_all() => println!("drained"),
        _ = stop.recv() => { gateway.kill_all().await; println!("stopped at once"); }
    }
    redis.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autoscaler_rule_follows_connections_within_bounds() {
        assert_eq!(wanted_for(0, 5000, 2, 10), 2);
        assert_eq!(wanted_for(12_001, 5000, 2, 10), 3);
        assert_eq!(wanted_for(1_000_000, 5000, 2, 10), 10);
        assert_eq!(wanted_for(10, 1, 1, 4), 4);
    }
}
