//! `socketfleet local <fleet.yaml>`: the fleet a `SocketFleet` describes, on this machine.
//!
//! Real `redis-server` processes in the spec's layout ([`redis`]), the spec's number of
//! sidecars with its settings ([`sidecars`]), and a load balancer on one port that also
//! serves the demo pages ([`balancer`]). Scaling follows the spec: with
//! `autoscaling.enabled` the number of sidecars follows live connection counts (target per
//! pod, min/max, the scale-down stabilisation); `+` and `-` on stdin scale by hand. A
//! sidecar going away drains like a pod: clients get `reconnect`, come back through the
//! balancer to another sidecar and resume their sessions. A process that exits without
//! being asked to is started again, as Kubernetes would: a sidecar at once, with its name
//! and ports; a Redis node after `--restart-after`, on its port with its cluster config.
//! Ctrl-C drains every sidecar and stops everything; a second Ctrl-C stops at once. No
//! process outlives this one.
//!
//! `/fleet.json` lists every process (addresses, pids): test drivers and `make bench`
//! run their fleets through this module rather than a harness of their own;
//! `--redis-only` serves a benchmark's peers the same Redis without sidecars. The balancer
//! holds two open files per client: the banner says how many fit ([`open_files`]).

pub mod balancer;
mod guard;
pub mod open_files;
pub mod preflight;
pub mod redis;
pub mod sidecars;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socketfleet_api::autoscale::{Action, Decision, Memory, PodDrain, PodLoad, Policy, balanced, decide, plural, rebalance, spread};
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
    /// Start Redis only, no sidecars (for other servers to use it).
    pub redis_only: bool,
    /// How long a Redis process that exited stays down before it is started again.
    pub restart_after: Duration,
    /// Keep the work folder (the logs of every process) when the run ends.
    pub keep_logs: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { port: 8000, www: PathBuf::from("demo"), redis_only: false, restart_after: Duration::from_secs(5), keep_logs: false }
    }
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
    let mut s = SidecarSettings::from_spec(spec, auth(fleet, jwt_secret)?, redis.sidecar.clone());
    s.resume_key = Some(Secret::Value(resume_key.into()));
    Ok(s)
}

/// The sidecars' auth: RS256's public key comes from a file named in the environment
/// (a Kubernetes Secret cannot be read here).
fn auth(fleet: &SocketFleet, jwt_secret: Option<&str>) -> anyhow::Result<Auth> {
    Ok(match fleet.spec.auth.mode {
        AuthMode::Hs256 => Auth::Hs256(Secret::Value(jwt_secret.unwrap_or_default().into())),
        AuthMode::Rs256 => {
            let file = std::env::var("SOCKETFLEET_JWT_PUBLIC_KEY_FILE").map_err(|_| {
                anyhow::anyhow!(
                    "auth.mode: rs256 reads a Secret in Kubernetes; locally, set SOCKETFLEET_JWT_PUBLIC_KEY_FILE to the PEM file"
                )
            })?;
            anyhow::ensure!(std::path::Path::new(&file).is_file(), "SOCKETFLEET_JWT_PUBLIC_KEY_FILE names {file}, which is not a file");
            Auth::Rs256 { public_key_file: file.into() }
        }
        AuthMode::None => Auth::None,
    })
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
    /// Sidecars that exited on their own and could not start again yet: name, ports, when
    /// to try again.
    restarting: Vec<(String, sidecars::Ports, Instant)>,
    started: usize,
    settings: SidecarSettings,
    dir: PathBuf,
    backends: Arc<Backends>,
    drain_limit: Duration,
    /// A rebalance is under way (told once when it starts and once when it ends).
    rebalancing: bool,
    /// When drains were last followed through `/status` (see [`STATUS_PERIOD`]).
    looked: Instant,
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
                    draining: s.draining || s.drained_from_outside,
                    pid: s.pid(),
                })
                .collect(),
        );
    }

    /// Serving or coming back: a sidecar that is starting again still counts as wanted.
    fn serving(&self) -> usize {
        self.sidecars.iter().filter(|s| !s.draining).count() + self.restarting.len()
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

    /// Drains one serving sidecar: the one named, else the one with the fewest connections
    /// (the cheapest to move) or, when `busiest`, the most (a person typing `-` wants to see
    /// clients move). Returns the name, or why none was drained.
    async fn remove_one(&mut self, named: Option<&str>, busiest: bool) -> Result<String, String> {
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in self.sidecars.iter().enumerate().filter(|(_, s)| !s.draining) {
            if named.is_some_and(|n| n != s.name) {
                continue;
            }
            let c = s.connections().await.unwrap_or(0);
            if best.is_none_or(|(_, b)| if busiest { c > b } else { c < b }) {
                best = Some((i, c));
            }
        }
        let Some((i, conns)) = best else {
            let serving: Vec<&str> = self.sidecars.iter().filter(|s| !s.draining).map(|s| s.name.as_str()).collect();
            return Err(match named {
                Some(n) => format!("no serving sidecar is named {n}; serving: {}", serving.join(", ")),
                None => "no sidecar is serving".into(),
            });
        };
        let s = &mut self.sidecars[i];
        println!("  - {} draining: {} move to the others", s.name, clients(conns));
        s.drain().await;
        let name = s.name.clone();
        self.publish();
        Ok(name)
    }

    /// Follows drains, one `/status` read per sidecar: takes out of the balancer a sidecar
    /// that drains because it was asked directly (it refuses new clients, whose handshakes
    /// would fail), and reports the drains local mode asked for: progress when it changes,
    /// the end once the sidecar has exited.
    async fn watch_drains(&mut self) {
        let mut changed = false;
        let drain_timeout = self.settings.drain_timeout;
        for s in &mut self.sidecars {
            if let Some((started, held)) = s.drain_started
                && s.exited()
            {
                // A sidecar exits before its drain timeout only once its last connection is
                // gone: what the last `/status` read still counted has moved since.
                let timed_out = started.elapsed() >= drain_timeout;
                let left = if timed_out { s.last_drain.as_ref().map_or(0, |d| d.remaining) } else { 0 };
                let closed =
                    if left > 0 { format!(", {} still connected at its drain timeout were closed", clients(left)) } else { String::new() };
                println!(
                    "  - {}: {} moved in {:.1} s{closed}; it has stopped",
                    s.name,
                    clients(held - left.min(held)),
                    started.elapsed().as_secs_f64()
                );
                s.drain_started = None;
                continue;
            }
            if s.drained_from_outside || (s.draining && s.drain_started.is_none()) {
                continue;
            }
            let Some(now) = s.status().await.map(|st| st.drain) else { continue };
            if !s.draining {
                if now.draining {
                    s.drained_from_outside = true;
                    changed = true;
                }
                continue;
            }
            let moved = s.last_drain.as_ref().is_none_or(|d| d.remaining != now.remaining);
            let due = s.drain_told.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if moved && due && now.total > 0 && now.remaining > 0 {
                s.drain_told = Some(Instant::now());
                println!("    {} draining: {} of {} moved", s.name, now.total - now.remaining.min(now.total), clients(now.total));
            }
            s.last_drain = Some(now);
        }
        if changed {
            self.publish();
        }
    }

    /// Forgets sidecars whose drain local mode asked for; starts again, with its name and
    /// ports, one that crashed or was killed; replaces, under a new name, one that drained
    /// and exited on its own (SIGTERM from outside, a drain asked of it directly).
    async fn supervise(&mut self) {
        // Exits are checked every pass; the `/status` reads that follow drains need not be.
        if self.looked.elapsed() >= STATUS_PERIOD {
            self.looked = Instant::now();
            self.watch_drains().await;
        }
        let before = self.sidecars.len();
        let mut gone = Vec::new();
        self.sidecars.retain_mut(|s| match s.exit_status() {
            Some(status) if !s.draining => {
                gone.push((s.name.clone(), s.ports(), status));
                false
            }
            // A drain local mode asked for is forgotten once its end is reported: one that
            // exited while `watch_drains` above was reading the others is kept for the next
            // look, which reports it.
            Some(_) => s.drain_started.is_some(),
            None => true,
        });
        for (name, ports, status) in gone {
            if status.success() {
                // It drained and exited (SIGTERM, or a drain asked of it directly): that pod is
                // gone and a new one takes its place, as a Deployment's ReplicaSet does; on the
                // same ports while they are free, so a benchmark's clients find it.
                let new = format!("sidecar-{}", self.started);
                self.started += 1;
                println!("  - {name} drained and exited; {new} takes its place");
                self.restarting.push((new, ports, Instant::now()));
            } else {
                // A crash or a kill: the container restarts in its pod, under its name.
                println!("  ! {name} exited ({status}) without being asked to; starting it again");
                self.restarting.push((name, ports, Instant::now()));
            }
        }
        if self.sidecars.len() != before {
            self.publish();
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.restarting).into_iter().partition(|(_, _, at)| *at <= now);
        self.restarting = later;
        for (name, ports, _) in due {
            match Sidecar::start_on(&name, &self.settings, &self.dir, Some(ports)).await {
                Ok(s) => {
                    println!("  + {name} is running again on ws://127.0.0.1:{}/ws", s.ws_port);
                    self.sidecars.push(s);
                    self.publish();
                }
                Err(e) => {
                    println!("  ! {name} did not start again: {e}; trying again in 10 s");
                    self.restarting.push((name, ports, now + Duration::from_secs(10)));
                }
            }
        }
    }

    /// Every sidecar as the autoscaler sees a pod: one starting again is unknown, not empty.
    async fn loads(&self) -> Vec<PodLoad> {
        let mut out = Vec::new();
        for s in &self.sidecars {
            let status = s.status().await;
            let drain = match &status {
                Some(st) if st.drain.finished => PodDrain::Finished,
                Some(st) if st.drain.draining => PodDrain::Draining { remaining: st.drain.remaining },
                _ if s.draining => PodDrain::Draining { remaining: 0 },
                _ => PodDrain::None,
            };
            out.push(PodLoad {
                name: s.name.clone(),
                ready: status.as_ref().is_some_and(|st| st.ready),
                connections: status.map(|st| st.connections),
                drain,
            });
        }
        out.extend(self.restarting.iter().map(|(name, ..)| PodLoad {
            name: name.clone(),
            ready: false,
            connections: None,
            drain: PodDrain::None,
        }));
        out
    }

    /// Carries out the autoscaler's action; a drained sidecar exits by itself, so a removal
    /// has nothing left to do here.
    async fn autoscale(&mut self, d: &Decision) -> anyhow::Result<()> {
        match &d.action {
            Action::ScaleUp { from, to } => {
                println!("  autoscaler: {from} → {to} sidecars: {}", d.reason);
                self.scale_to(d.memory.replicas as usize - usize::from(d.memory.draining.is_some())).await?;
            }
            Action::Drain { pod, connections } => {
                println!("  autoscaler: {}", d.reason);
                if let Some(s) = self.sidecars.iter_mut().find(|s| &s.name == pod) {
                    println!("  - {pod} draining: {} move to the others", clients(*connections));
                    s.drain().await;
                    self.publish();
                }
            }
            Action::Remove { .. } => println!("  autoscaler: {}", d.reason),
            Action::Hold => {}
        }
        Ok(())
    }

    /// Rebalancing, as the operator does it: sidecars well above the mean hand connections
    /// off over the next `period`. Prints when one starts and when the spread is even again.
    async fn rebalance(&mut self, loads: &[PodLoad], period: Duration) {
        let sheds = rebalance(loads, period.as_millis() as u64);
        if sheds.is_empty() {
            if self.rebalancing && balanced(loads) {
                self.rebalancing = false;
                println!("  rebalanced: the fullest sidecar holds {:.2}× the mean", spread(loads).unwrap_or(1.0));
            }
            return;
        }
        let mut told = Vec::new();
        for shed in &sheds {
            if let Some(s) = self.sidecars.iter().find(|s| s.name == shed.pod)
                && let Some(n) = s.shed(shed.count, period).await
                && n > 0
            {
                told.push(format!("{} hands off {}", shed.pod, plural(n, "connection")));
            }
        }
        if !self.rebalancing && !told.is_empty() {
            self.rebalancing = true;
            println!("  rebalancing ({:.2}× the mean on the fullest): {}", spread(loads).unwrap_or(0.0), told.join(", "));
        }
    }

    async fn scale_to(&mut self, n: usize) -> anyhow::Result<()> {
        while self.serving() < n {
            self.add().await?;
        }
        while self.serving() > n {
            if self.remove_one(None, false).await.is_err() {
                break;
            }
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

/// How often supervision reads each sidecar's `/status` to follow drains (processes that
/// exited are looked for on every 100 ms pass).
const STATUS_PERIOD: Duration = Duration::from_millis(250);

/// How often local mode's autoscaler decides (and rebalances).
const AUTOSCALE_PERIOD: Duration = Duration::from_secs(2);

/// "its 1 client", "its 3 clients".
fn clients(n: u64) -> String {
    format!("its {}", plural(n, "client"))
}

/// Ctrl-C, SIGTERM (a supervisor's, `kill`'s, a test harness's) and SIGHUP (the terminal
/// closed) all stop the fleet the same way: the first drains, the second stops at once.
fn stop_signals() -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        let mut sig = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move { while sig.recv().await.is_some() && tx.send(()).is_ok() {} });
    }
    Ok(rx)
}

/// The local Redis password: `SOCKETFLEET_REDIS_PASSWORD` when set (a benchmark hands the
/// same one to its peers), else generated for this run.
fn redis_password() -> String {
    std::env::var("SOCKETFLEET_REDIS_PASSWORD").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| random_hex(16))
}

/// The folder of one run (configs, logs): removed when the run ends, on every path,
/// unless `--keep-logs` asked to keep it.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            println!("logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs the fleet until Ctrl-C, SIGTERM or SIGHUP. Every process it started is stopped and
/// its folder removed on every way out, errors included: the processes are killed when
/// their handles are dropped, the folder by [`WorkDir`].
pub async fn run(fleet: SocketFleet, opts: Options) -> anyhow::Result<()> {
    // First: a signal during start-up must stop what has started, not end this process
    // with its children left running.
    let mut stop = stop_signals()?;
    let open_files = open_files::raise_to_hard_limit();
    let notices = preflight::check(&fleet, &opts.www).await.map_err(|problems| {
        anyhow::anyhow!("{} cannot run locally:\n  {problems}", fleet.metadata.name.as_deref().unwrap_or("the fleet"))
    })?;
    let listener = socketfleet_plumbing::http_server::listen(([127, 0, 0, 1], opts.port).into()).map_err(|e| {
        anyhow::anyhow!("port {} is busy ({e}); pass --port <another> (make demo: DEMO_PORT=<another> make demo)", opts.port)
    })?;
    // `--port 0` picks a free port: say the one really bound.
    let port = listener.local_addr()?.port();
    sidecars::binary()?;
    let work = WorkDir { path: redis::work_dir()?, keep: opts.keep_logs };
    // Before any child: they join its process group. Declared after `work`, so dropped
    // (killed, on a normal exit) before the folder is removed.
    let _guard = guard::Guard::start((!opts.keep_logs).then_some(work.path.as_path()))?;
    let dir = work.path.clone();
    for notice in &notices {
        println!("note: {notice}");
    }
    let spec = fleet.spec.clone();
    println!("starting {} ({:?} Redis)...", fleet.metadata.name.clone().unwrap_or_default(), spec.redis.mode);
    let mut redis = redis::start(&spec.redis, &dir, &redis_password()).await?;
    println!("  {}", redis.summary);
    let (secret, generated) = jwt_secret(&fleet)?;
    let settings = sidecar_settings(&fleet, &redis, secret.as_deref(), &random_hex(32))?;
    let backends = Arc::new(Backends::default());
    let drain_limit = spec.drain.timeout.as_duration() + Duration::from_secs(5);
    backends.set_redis(redis.view());
    let mut gateway = Gateway {
        sidecars: Vec::new(),
        restarting: Vec::new(),
        started: 0,
        settings,
        dir: dir.clone(),
        backends: backends.clone(),
        drain_limit,
        rebalancing: false,
        looked: Instant::now(),
    };
    let (min, max) = if opts.redis_only { (0, 0) } else { (spec.gateway.replicas.min, spec.gateway.replicas.max) };
    let mut wanted = spec.gateway.replicas.count.unwrap_or(min).clamp(min, max.max(min)) as usize;
    gateway.scale_to(wanted).await?;
    let site =
        Arc::new(Site { www: opts.www.clone(), jwt_secret: secret.clone().filter(|_| generated), auth_mode: spec.auth.mode.as_str() });
    tokio::spawn(balancer::serve(listener, backends.clone(), site));

    println!("\nSocketFleet is running locally:  http://127.0.0.1:{}/", port);
    match open_files {
        Some(limit) => println!(
            "  clients connect to ws://127.0.0.1:{port}/ws (the balancer picks a sidecar; it proxies up to {} clients at once: open-file limit {limit})",
            open_files::clients_within(limit)
        ),
        None => println!("  clients connect to ws://127.0.0.1:{port}/ws (the balancer picks a sidecar)"),
    }
    if generated {
        println!("  demo tokens: http://127.0.0.1:{}/token?user=<name> (HS256 secret generated for this run)", port);
    }
    if opts.redis_only {
        println!("  Redis only (--redis-only): no sidecars");
    } else if spec.autoscaling.builtin() {
        println!("  autoscaling: {} connections per sidecar, {min}..{max} sidecars", spec.autoscaling.target_connections_per_pod);
    } else if spec.autoscaling.enabled {
        println!("  autoscaling.mode: external: in Kubernetes an HPA or KEDA scales the fleet; here it stays at {wanted} (+ and - scale)");
    }
    println!(
        "  type + and Enter to add a sidecar, - to drain the busiest (- <name>: that one); Ctrl-C drains and stops everything (twice: at once)"
    );
    if opts.keep_logs {
        println!("  files and logs: {} (kept when it stops: --keep-logs)\n", dir.display());
    } else {
        println!("  files and logs: {} (removed when it stops; --keep-logs keeps them)\n", dir.display());
    }

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(AUTOSCALE_PERIOD);
    // Supervision looks often: a process that died is started again within a tenth of a
    // second (a drained sidecar's replacement waits for this, as a pod's for its kubelet).
    let mut watch = tokio::time::interval(Duration::from_millis(100));
    let autoscaled = spec.autoscaling.builtin() && !opts.redis_only;
    let policy = Policy::from_spec(&spec);
    let mut memory = Memory { replicas: wanted as u32, ..Memory::default() };
    let clock = Instant::now();
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(l)) if l.trim() == "+" => { wanted = (wanted + 1).min(max as usize); gateway.scale_to(wanted).await?; memory = Memory { replicas: wanted as u32, ..Memory::default() }; }
                Ok(Some(l)) if l.trim().starts_with('-') => {
                    let named = l.trim()[1..].trim();
                    match gateway.remove_one(Some(named).filter(|n| !n.is_empty()), true).await {
                        // At replicas.min the drained sidecar is replaced, as a Deployment
                        // replaces a pod: its clients still move.
                        Ok(name) if wanted <= min as usize => {
                            println!("  {name} is replaced (replicas.min is {min})");
                            gateway.add().await?;
                        }
                        Ok(_) => { wanted -= 1; memory = Memory { replicas: wanted as u32, ..Memory::default() }; }
                        Err(why) => println!("  - {why}"),
                    }
                }
                Ok(Some(_)) => println!("  + adds a sidecar, - drains the busiest one, - <name> drains that one (within {min}..{max}); now {wanted}"),
                _ => stdin_open = false,
            },
            _ = watch.tick() => {
                gateway.supervise().await;
                for line in redis.supervise(opts.restart_after).await {
                    println!("{line}");
                }
                backends.set_redis(redis.view());
            }
            _ = tick.tick() => {
                if autoscaled {
                    memory.replicas = memory.replicas.max(1);
                    let loads = gateway.loads().await;
                    let d = decide(&policy, &memory, &loads, clock.elapsed().as_millis() as u64);
                    gateway.autoscale(&d).await?;
                    if spec.autoscaling.rebalance && d.action == Action::Hold && d.memory.draining.is_none() && loads.len() == d.memory.replicas as usize {
                        gateway.rebalance(&loads, AUTOSCALE_PERIOD).await;
                    }
                    memory = d.memory;
                    wanted = memory.replicas as usize - usize::from(memory.draining.is_some());
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
    drop(work);
    println!("stopped");
    Ok(())
}
