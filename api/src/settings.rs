//! The sidecar's settings: the one definition of its environment variables.
//!
//! The operator (a gateway pod's env) and `socketfleet local` (a sidecar process's env)
//! write them with [`SidecarSettings::to_env`]; the sidecar reads them with
//! [`SidecarSettings::from_env`], which reports every bad variable at once so that `main`
//! exits with code 64 (EX_USAGE) at start instead of failing at first use. Nothing else
//! spells an `SF_*` name. Each `ENV_*` name stands beside its default; durations are read
//! with the bounds of their type in [`crate::duration`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::{
    Bounded, DrainAcceptGrace, DrainSpread, DrainTimeout, HandshakeTimeout, HistoryTtl, IdleTimeout, PingInterval, PresenceTtl,
    RedisRetryBudget, RedisTimeout, ResumeWindow, SessionCheckpoint, TopologyPoll, format_millis,
};

/// Ports the sidecar listens on inside a gateway pod (an app container must not use them).
pub const WS_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9090;
pub const APP_API_PORT: u16 = 8081;

pub const ENV_WS_ADDR: &str = "SF_WS_ADDR";
pub const ENV_ADMIN_ADDR: &str = "SF_ADMIN_ADDR";
/// The app's localhost API (publish); loopback by default because it is unauthenticated.
pub const ENV_APP_API_ADDR: &str = "SF_APP_API_ADDR";
pub const ENV_NODE_NAME: &str = "SF_NODE_NAME";
pub const DEFAULT_NODE_NAME: &str = "sidecar";

pub const ENV_REDIS_MODE: &str = "SF_REDIS_MODE";
/// Comma-separated `host:port` list: the node (standalone), seed nodes (cluster) or the
/// Sentinels (sentinel).
pub const ENV_REDIS_ADDRS: &str = "SF_REDIS_ADDRS";
pub const DEFAULT_REDIS_ADDRS: &str = "127.0.0.1:6379";
pub const ENV_REDIS_SENTINEL_MASTER: &str = "SF_REDIS_SENTINEL_MASTER";
pub const DEFAULT_REDIS_SENTINEL_MASTER: &str = "mymaster";
pub const ENV_REDIS_PASSWORD: &str = "SF_REDIS_PASSWORD";
/// The Sentinels' own password (sentinel mode; Sentinels with `requirepass`).
pub const ENV_REDIS_SENTINEL_PASSWORD: &str = "SF_REDIS_SENTINEL_PASSWORD";
pub const ENV_REDIS_TIMEOUT: &str = "SF_REDIS_TIMEOUT";
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may keep retrying through a failover before it fails.
pub const ENV_REDIS_RETRY_BUDGET: &str = "SF_REDIS_RETRY_BUDGET";
pub const DEFAULT_REDIS_RETRY_BUDGET: Duration = Duration::from_secs(10);
pub const ENV_TOPOLOGY_POLL: &str = "SF_TOPOLOGY_POLL";
pub const DEFAULT_TOPOLOGY_POLL: Duration = Duration::from_secs(5);
pub const ENV_DURABLE_PUBLISH: &str = "SF_DURABLE_PUBLISH";

pub const ENV_HISTORY_SIZE: &str = "SF_HISTORY_SIZE";
pub const DEFAULT_HISTORY_SIZE: u32 = 1000;
pub const MAX_HISTORY_SIZE: u32 = 10_000_000;
pub const ENV_HISTORY_TTL: &str = "SF_HISTORY_TTL";
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(600);
pub const ENV_RECOVERY_PAGE: &str = "SF_RECOVERY_PAGE";
pub const DEFAULT_RECOVERY_PAGE: u32 = 100;
pub const ENV_PRESENCE_TTL: &str = "SF_PRESENCE_TTL";
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(30);

pub const ENV_MAX_CONNECTIONS: &str = "SF_MAX_CONNECTIONS";
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
pub const ENV_MAX_SUBSCRIPTIONS: &str = "SF_MAX_SUBSCRIPTIONS";
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 256;
/// The sidecar's worker threads; unset, one per CPU the process may use (cgroup limits
/// count). With one, frames are written by the task that offers them (`send_queue.rs`).
pub const ENV_WORKER_THREADS: &str = "SF_WORKER_THREADS";
pub const MAX_WORKER_THREADS: usize = 1024;
pub const ENV_SEND_QUEUE: &str = "SF_SEND_QUEUE";
pub const DEFAULT_SEND_QUEUE: usize = 1024;
pub const ENV_MAX_FRAME_BYTES: &str = "SF_MAX_FRAME_BYTES";
pub const DEFAULT_MAX_FRAME_BYTES: usize = 65536;
pub const ENV_PING_INTERVAL: &str = "SF_PING_INTERVAL";
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
pub const ENV_IDLE_TIMEOUT: &str = "SF_IDLE_TIMEOUT";
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const ENV_HANDSHAKE_TIMEOUT: &str = "SF_HANDSHAKE_TIMEOUT";
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole drain is bounded by this; the process exits when it runs out.
pub const ENV_DRAIN_TIMEOUT: &str = "SF_DRAIN_TIMEOUT";
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Closes are paced evenly over this window so the rest of the fleet is not stormed.
pub const ENV_DRAIN_SPREAD: &str = "SF_DRAIN_SPREAD";
pub const DEFAULT_DRAIN_SPREAD: Duration = Duration::from_secs(20);
/// New connections are still accepted this long after a drain starts, while the pod's
/// endpoint is removed from Services.
pub const ENV_DRAIN_ACCEPT_GRACE: &str = "SF_DRAIN_ACCEPT_GRACE";
pub const DEFAULT_DRAIN_ACCEPT_GRACE: Duration = Duration::from_secs(2);

/// HMAC key for resume tokens, shared by every pod of a fleet (from a Secret). Without it
/// a random key is generated: tokens then only resume on the pod that issued them.
pub const ENV_RESUME_KEY: &str = "SF_RESUME_KEY";
/// The key before the last rotation; tokens signed with it are still accepted.
pub const ENV_RESUME_KEY_PREVIOUS: &str = "SF_RESUME_KEY_PREVIOUS";
pub const MIN_RESUME_KEY_BYTES: usize = 32;
pub const ENV_RESUME_WINDOW: &str = "SF_RESUME_WINDOW";
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(300);

/// How often sessions with changed subscriptions or state are written to Redis.
pub const ENV_SESSION_CHECKPOINT: &str = "SF_SESSION_CHECKPOINT";
pub const DEFAULT_SESSION_CHECKPOINT: Duration = Duration::from_secs(1);
/// How often a session whose only change is its positions is written. Under load every
/// position moves with every message, so this write is what the checkpoint costs (it was
/// a third of the sidecar's CPU at 1 s under the fan-out benchmark). A position checkpoint
/// that is older than the client only means resent duplicates after a SIGKILL (dropped by
/// offset), never a loss; a drain writes exact positions whatever this says. Unset: 10s,
/// or half the resume window when that is shorter.
pub const ENV_SESSION_POSITION_CHECKPOINT: &str = "SF_SESSION_POSITION_CHECKPOINT";
pub const DEFAULT_SESSION_POSITION_CHECKPOINT: Duration = Duration::from_secs(10);
/// Largest custom session state the app may set (`PUT /sessions/{sid}/state`), bytes.
pub const ENV_SESSION_STATE_MAX: &str = "SF_SESSION_STATE_MAX";
pub const DEFAULT_SESSION_STATE_MAX: usize = 16384;

/// Log filter (`tracing` env-filter syntax) and format (`json` or plain); read by the
/// sidecar's `main` before anything else, so not part of [`SidecarSettings`].
pub const ENV_LOG: &str = "SF_LOG";
pub const ENV_LOG_FORMAT: &str = "SF_LOG_FORMAT";

/// `none`, `hs256` or `rs256`. Deliberately without a default: running without auth must be
/// a decision, not an accident.
pub const ENV_AUTH: &str = "SF_AUTH";
pub const MIN_HS256_SECRET_BYTES: usize = 32;
pub const ENV_JWT_SECRET: &str = "SF_JWT_SECRET";
pub const ENV_JWT_SECRET_FILE: &str = "SF_JWT_SECRET_FILE";
pub const ENV_JWT_PUBLIC_KEY_FILE: &str = "SF_JWT_PUBLIC_KEY_FILE";

/// A secret value: in the environment, or (written by the operator) from a Secret's key.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    /// Kubernetes only: `valueFrom.secretKeyRef`.
    Ref {
        name: String,
        key: String,
    },
}

impl Secret {
    /// The value, when this process holds it.
    pub fn value(&self) -> Option<&str> {
        match self {
            Secret::Value(v) => Some(v),
            Secret::Ref { .. } => None,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret(<redacted>)"),
            Secret::Ref { name, key } => write!(f, "Secret({name}/{key})"),
        }
    }
}

/// The sidecar's name in logs, `welcome` frames and Redis (its pod's name in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeName {
    Value(String),
    /// Kubernetes only: the pod's `metadata.name`.
    PodName,
}

impl NodeName {
    pub fn as_str(&self) -> &str {
        match self {
            NodeName::Value(v) => v,
            NodeName::PodName => DEFAULT_NODE_NAME,
        }
    }
}

/// Where the sidecar finds Redis and how it follows the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    Cluster,
    Sentinel { master: String },
}

impl RedisMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Cluster => "cluster",
            RedisMode::Sentinel { .. } => "sentinel",
        }
    }
}

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Hs256(Secret),
    /// The HS256 secret in a file.
    Hs256File(PathBuf),
    /// The PEM public key in a file (a mounted Secret in Kubernetes).
    Rs256 {
        public_key_file: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub mode: RedisMode,
    pub addrs: Vec<String>,
    pub password: Option<Secret>,
    /// What the Sentinels ask for (sentinel mode); none when they ask nothing.
    pub sentinel_password: Option<Secret>,
    pub timeout: Duration,
    pub retry_budget: Duration,
    pub topology_poll: Duration,
    pub durable_publish: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            mode: RedisMode::Standalone,
            addrs: vec![DEFAULT_REDIS_ADDRS.into()],
            password: None,
            sentinel_password: None,
            timeout: DEFAULT_REDIS_TIMEOUT,
            retry_budget: DEFAULT_REDIS_RETRY_BUDGET,
            topology_poll: DEFAULT_TOPOLOGY_POLL,
            durable_publish: false,
        }
    }
}

/// Every setting of a sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarSettings {
    pub ws_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app_api_addr: SocketAddr,
    pub node_name: NodeName,
    pub redis: RedisSettings,
    pub history_size: u32,
    pub history_ttl: Duration,
    pub recovery_page: u32,
    pub presence_ttl: Duration,
    pub max_connections: usize,
    pub max_subscriptions: usize,
    pub send_queue: usize,
    /// Unset: one per CPU the process may use.
    pub worker_threads: Option<usize>,
    pub max_frame_bytes: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub drain_timeout: Duration,
    pub drain_spread: Duration,
    pub drain_accept_grace: Duration,
    pub resume_key: Option<Secret>,
    pub resume_key_previous: Option<Secret>,
    pub resume_window: Duration,
    pub session_checkpoint: Duration,
    /// Unset: derived from the resume window ([`SidecarSettings::position_checkpoint`]).
    pub session_position_checkpoint: Option<Duration>,
    pub session_state_max: usize,
    pub auth: Auth,
}

/// One bad variable: which, what it held, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct SettingError {
    pub var: &'static str,
    pub problem: String,
}

/// A variable's value as a pod spec needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Text(String),
    SecretKey { name: String, key: String },
    PodName,
}

impl SidecarSettings {
    /// Defaults everywhere but authentication, which must be chosen.
    pub fn new(auth: Auth) -> SidecarSettings {
        SidecarSettings {
            ws_addr: SocketAddr::from(([0, 0, 0, 0], WS_PORT)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], ADMIN_PORT)),
            app_api_addr: SocketAddr::from(([127, 0, 0, 1], APP_API_PORT)),
            node_name: NodeName::Value(DEFAULT_NODE_NAME.into()),
            redis: RedisSettings::default(),
            history_size: DEFAULT_HISTORY_SIZE,
            history_ttl: DEFAULT_HISTORY_TTL,
            recovery_page: DEFAULT_RECOVERY_PAGE,
            presence_ttl: DEFAULT_PRESENCE_TTL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            send_queue: DEFAULT_SEND_QUEUE,
            worker_threads: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            ping_interval: DEFAULT_PING_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_spread: DEFAULT_DRAIN_SPREAD,
            drain_accept_grace: DEFAULT_DRAIN_ACCEPT_GRACE,
            resume_key: None,
            resume_key_previous: None,
            resume_window: DEFAULT_RESUME_WINDOW,
            session_checkpoint: DEFAULT_SESSION_CHECKPOINT,
            session_position_checkpoint: None,
            session_state_max: DEFAULT_SESSION_STATE_MAX,
            auth,
        }
    }

    /// How often positions-only changes are checkpointed: as set, else 10s or half the
    /// resume window (whichever is shorter), but never more often than other changes.
    pub fn position_checkpoint(&self) -> Duration {
        self.session_position_checkpoint
            .unwrap_or_else(|| DEFAULT_SESSION_POSITION_CHECKPOINT.min(self.resume_window / 2))
            .max(self.session_checkpoint)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<SidecarSettings, Vec<SettingError>> {
        SidecarSettings::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads every variable through `get` and returns all problems, not just the first.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<SidecarSettings, Vec<SettingError>> {
        let mut r = Reader { get, errors: Vec::new() };
        let d = SidecarSettings::new(Auth::None);
        let node_name = (get)(ENV_NODE_NAME).or_else(|| (get)("HOSTNAME")).unwrap_or_else(|| DEFAULT_NODE_NAME.to_string());
        let s = SidecarSettings {
            ws_addr: r.addr(ENV_WS_ADDR, d.ws_addr),
            admin_addr: r.addr(ENV_ADMIN_ADDR, d.admin_addr),
            app_api_addr: r.addr(ENV_APP_API_ADDR, d.app_api_addr),
            node_name: NodeName::Value(node_name),
            redis: r.redis(),
            history_size: r.number(ENV_HISTORY_SIZE, d.history_size, 1, MAX_HISTORY_SIZE),
            history_ttl: r.duration::<HistoryTtl>(ENV_HISTORY_TTL, d.history_ttl),
            recovery_page: r.number(ENV_RECOVERY_PAGE, d.recovery_page, 1, 10_000),
            presence_ttl: r.duration::<PresenceTtl>(ENV_PRESENCE_TTL, d.presence_ttl),
            max_connections: r.number(ENV_MAX_CONNECTIONS, d.max_connections, 1, 10_000_000),
            max_subscriptions: r.number(ENV_MAX_SUBSCRIPTIONS, d.max_subscriptions, 1, 100_000),
            send_queue: r.number(ENV_SEND_QUEUE, d.send_queue, 1, 1_000_000),
            worker_threads: (get)(ENV_WORKER_THREADS).map(|_| r.number(ENV_WORKER_THREADS, 1, 1, MAX_WORKER_THREADS)),
            max_frame_bytes: r.number(ENV_MAX_FRAME_BYTES, d.max_frame_bytes, 256, 64 << 20),
            ping_interval: r.duration::<PingInterval>(ENV_PING_INTERVAL, d.ping_interval),
            idle_timeout: r.duration::<IdleTimeout>(ENV_IDLE_TIMEOUT, d.idle_timeout),
            handshake_timeout: r.duration::<HandshakeTimeout>(ENV_HANDSHAKE_TIMEOUT, d.handshake_timeout),
            drain_timeout: r.duration::<DrainTimeout>(ENV_DRAIN_TIMEOUT, d.drain_timeout),
            drain_spread: r.duration::<DrainSpread>(ENV_DRAIN_SPREAD, d.drain_spread),
            drain_accept_grace: r.duration::<DrainAcceptGrace>(ENV_DRAIN_ACCEPT_GRACE, d.drain_accept_grace),
            resume_key: r.key(ENV_RESUME_KEY),
            resume_key_previous: r.key(ENV_RESUME_KEY_PREVIOUS),
            resume_window: r.duration::<ResumeWindow>(ENV_RESUME_WINDOW, d.resume_window),
            session_checkpoint: r.duration::<SessionCheckpoint>(ENV_SESSION_CHECKPOINT, d.session_checkpoint),
            session_position_checkpoint: (get)(ENV_SESSION_POSITION_CHECKPOINT)
                .map(|_| r.duration::<SessionCheckpoint>(ENV_SESSION_POSITION_CHECKPOINT, DEFAULT_SESSION_POSITION_CHECKPOINT)),
            session_state_max: r.number(ENV_SESSION_STATE_MAX, d.session_state_max, 2, 1 << 20),
            auth: r.auth(),
        };
        for problem in s.cross_field_problems() {
            r.errors.push(problem);
        }
        if r.errors.is_empty() { Ok(s) } else { Err(r.errors) }
    }

    /// Rules between settings (each single value was checked on its own already).
    fn cross_field_problems(&self) -> Vec<SettingError> {
        let mut out = Vec::new();
        let mut fail = |var, problem: String| out.push(SettingError { var, problem });
        if self.drain_accept_grace + self.drain_spread >= self.drain_timeout {
            fail(ENV_DRAIN_SPREAD, format!("{ENV_DRAIN_ACCEPT_GRACE} + {ENV_DRAIN_SPREAD} must be shorter than {ENV_DRAIN_TIMEOUT}"));
        }
        if self.session_checkpoint * 2 > self.resume_window {
            fail(ENV_SESSION_CHECKPOINT, format!("must be at most half of {ENV_RESUME_WINDOW}, or sessions expire between checkpoints"));
        }
        if let Some(p) = self.session_position_checkpoint
            && (p < self.session_checkpoint || p * 2 > self.resume_window)
        {
            fail(
                ENV_SESSION_POSITION_CHECKPOINT,
                format!("must be at least {ENV_SESSION_CHECKPOINT} and at most half of {ENV_RESUME_WINDOW}"),
            );
        }
        out
    }

    /// Every variable, in a stable order. Secrets stay references where they are ones.
    pub fn to_env(&self) -> Vec<(&'static str, EnvValue)> {
        let text = |v: String| EnvValue::Text(v);
        let dur = |d: Duration| EnvValue::Text(format_millis(d.as_millis() as u64));
        let secret = |s: &Secret| match s {
            Secret::Value(v) => EnvValue::Text(v.clone()),
            Secret::Ref { name, key } => EnvValue::SecretKey { name: name.clone(), key: key.clone() },
        };
        let mut out = vec![
            (
                ENV_NODE_NAME,
                match &self.node_name {
                    NodeName::Value(v) => text(v.clone()),
                    NodeName::PodName => EnvValue::PodName,
                },
            ),
            (ENV_WS_ADDR, text(self.ws_addr.to_string())),
            (ENV_ADMIN_ADDR, text(self.admin_addr.to_string())),
            (ENV_APP_API_ADDR, text(self.app_api_addr.to_string())),
            (ENV_REDIS_MODE, text(self.redis.mode.as_str().into())),
            (ENV_REDIS_ADDRS, text(self.redis.addrs.join(","))),
        ];
        if let RedisMode::Sentinel { master } = &self.redis.mode {
            out.push((ENV_REDIS_SENTINEL_MASTER, text(master.clone())));
        }
        if let Some(p) = &self.redis.password {
            out.push((ENV_REDIS_PASSWORD, secret(p)));
        }
        if let Some(p) = &self.redis.sentinel_password {
            out.push((ENV_REDIS_SENTINEL_PASSWORD, secret(p)));
        }
        out.extend([
            (ENV_REDIS_TIMEOUT, dur(self.redis.timeout)),
            (ENV_REDIS_RETRY_BUDGET, dur(self.redis.retry_budget)),
            (ENV_TOPOLOGY_POLL, dur(self.redis.topology_poll)),
            (ENV_DURABLE_PUBLISH, text(self.redis.durable_publish.to_string())),
            (ENV_HISTORY_SIZE, text(self.history_size.to_string())),
            (ENV_HISTORY_TTL, dur(self.history_ttl)),
            (ENV_RECOVERY_PAGE, text(self.recovery_page.to_string())),
            (ENV_PRESENCE_TTL, dur(self.presence_ttl)),
            (ENV_MAX_CONNECTIONS, text(self.max_connections.to_string())),
            (ENV_MAX_SUBSCRIPTIONS, text(self.max_subscriptions.to_string())),
            (ENV_SEND_QUEUE, text(self.send_queue.to_string())),
            (ENV_MAX_FRAME_BYTES, text(self.max_frame_bytes.to_string())),
            (ENV_PING_INTERVAL, dur(self.ping_interval)),
            (ENV_IDLE_TIMEOUT, dur(self.idle_timeout)),
            (ENV_HANDSHAKE_TIMEOUT, dur(self.handshake_timeout)),
            (ENV_DRAIN_TIMEOUT, dur(self.drain_timeout)),
            (ENV_DRAIN_SPREAD, dur(self.drain_spread)),
            (ENV_DRAIN_ACCEPT_GRACE, dur(self.drain_accept_grace)),
            (ENV_RESUME_WINDOW, dur(self.resume_window)),
            (ENV_SESSION_CHECKPOINT, dur(self.session_checkpoint)),
        ]);
        if let Some(p) = self.session_position_checkpoint {
            out.push((ENV_SESSION_POSITION_CHECKPOINT, dur(p)));
        }
        if let Some(n) = self.worker_threads {
            out.push((ENV_WORKER_THREADS, text(n.to_string())));
        }
        out.push((ENV_SESSION_STATE_MAX, text(self.session_state_max.to_string())));
        if let Some(k) = &self.resume_key {
            out.push((ENV_RESUME_KEY, secret(k)));
        }
        if let Some(k) = &self.resume_key_previous {
            out.push((ENV_RESUME_KEY_PREVIOUS, secret(k)));
        }
        match &self.auth {
            Auth::None => out.push((ENV_AUTH, text("none".into()))),
            Auth::Hs256(s) => out.extend([(ENV_AUTH, text("hs256".into())), (ENV_JWT_SECRET, secret(s))]),
            Auth::Hs256File(path) => {
                out.extend([(ENV_AUTH, text("hs256".into())), (ENV_JWT_SECRET_FILE, text(path.display().to_string()))]);
            }
            Auth::Rs256 { public_key_file } => {
                out.extend([(ENV_AUTH, text("rs256".into())), (ENV_JWT_PUBLIC_KEY_FILE, text(public_key_file.display().to_string()))]);
            }
        }
        out
    }

    /// [`SidecarSettings::to_env`] as plain `(name, value)` pairs, for a process this
    /// program starts itself; fails on values only Kubernetes can fill in.
    pub fn to_process_env(&self) -> Result<Vec<(&'static str, String)>, SettingError> {
        self.to_env()
            .into_iter()
            .map(|(name, value)| match value {
                EnvValue::Text(v) => Ok((name, v)),
                _ => Err(SettingError { var: name, problem: "comes from Kubernetes (a Secret or the pod's name), not a value".into() }),
            })
            .collect()
    }
}

/// Collects values and problems while reading every variable.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<SettingError>,
}

impl Reader<'_> {
    fn fail(&mut self, var: &'static str, problem: impl Into<String>) {
        self.errors.push(SettingError { var, problem: problem.into() });
    }

    fn addr(&mut self, var: &'static str, default: SocketAddr) -> SocketAddr {
        let Some(raw) = (self.get)(var) else { return default };
        raw.trim().parse().unwrap_or_else(|_| {
            self.fail(var, format!("{raw:?} is not an ip:port address"));
            default
        })
    }

    fn duration<B: BoundedDuration>(&mut self, var: &'static str, default: Duration) -> Duration {
        let Some(raw) = (self.get)(var) else { return default };
        match B::parse_text(&raw) {
            Ok(d) => d,
            Err(e) => {
                self.fail(var, e);
                default
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(&mut self, var: &'static str, default: T, min: T, max: T) -> T {
        let Some(raw) = (self.get)(var) else { return default };
        match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                self.fail(var, format!("{raw:?} is not a whole number from {min} to {max}"));
                default
            }
        }
    }

    fn flag(&mut self, var: &'static str) -> bool {
        let Some(raw) = (self.get)(var) else { return false };
        match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.fail(var, format!("{raw:?} is not true or false"));
                false
            }
        }
    }

    fn key(&mut self, var: &'static str) -> Option<Secret> {
        let key = (self.get)(var)?;
        if key.len() < MIN_RESUME_KEY_BYTES {
            self.fail(var, format!("a resume-token key must be at least {MIN_RESUME_KEY_BYTES} bytes"));
        }
        Some(Secret::Value(key))
    }

    fn auth(&mut self) -> Auth {
        let Some(mode) = (self.get)(ENV_AUTH) else {
            self.fail(ENV_AUTH, "not set: choose hs256 or rs256 (with a key), or none to accept anonymous clients");
            return Auth::None;
        };
        match mode.trim() {
            "none" => Auth::None,
            "hs256" => match ((self.get)(ENV_JWT_SECRET), (self.get)(ENV_JWT_SECRET_FILE)) {
                (Some(s), None) => {
                    if s.len() < MIN_HS256_SECRET_BYTES {
                        self.fail(ENV_JWT_SECRET, format!("an HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes"));
                    }
                    Auth::Hs256(Secret::Value(s))
                }
                (None, Some(path)) => Auth::Hs256File(PathBuf::from(path)),
                (Some(_), Some(_)) => {
                    self.fail(ENV_JWT_SECRET, format!("set either it or {ENV_JWT_SECRET_FILE}, not both"));
                    Auth::None
                }
                (None, None) => {
                    self.fail(ENV_JWT_SECRET, format!("hs256 needs it or {ENV_JWT_SECRET_FILE}"));
                    Auth::None
                }
            },
            "rs256" => match (self.get)(ENV_JWT_PUBLIC_KEY_FILE) {
                Some(path) => Auth::Rs256 { public_key_file: PathBuf::from(path) },
                None => {
                    self.fail(ENV_JWT_PUBLIC_KEY_FILE, "rs256 needs a PEM public key file");
                    Auth::None
                }
            },
            other => {
                self.fail(ENV_AUTH, format!("{other:?} is not one of none, hs256, rs256"));
                Auth::None
            }
        }
    }

    fn redis(&mut self) -> RedisSettings {
        let d = RedisSettings::default();
        let mode = match (self.get)(ENV_REDIS_MODE).as_deref().map(str::trim) {
            None | Some("standalone") => RedisMode::Standalone,
            Some("cluster") => RedisMode::Cluster,
            Some("sentinel") => RedisMode::Sentinel {
                master: (self.get)(ENV_REDIS_SENTINEL_MASTER).unwrap_or_else(|| DEFAULT_REDIS_SENTINEL_MASTER.into()),
            },
            Some(other) => {
                self.fail(ENV_REDIS_MODE, format!("{other:?} is not one of standalone, cluster, sentinel"));
                RedisMode::Standalone
            }
        };
        let raw = (self.get)(ENV_REDIS_ADDRS).unwrap_or_else(|| DEFAULT_REDIS_ADDRS.into());
        let addrs: Vec<String> = raw.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            self.fail(ENV_REDIS_ADDRS, "needs at least one host:port");
        }
        for a in &addrs {
            if let Err(problem) = check_host_port(a) {
                self.fail(ENV_REDIS_ADDRS, problem);
            }
        }
        if mode == RedisMode::Standalone && addrs.len() > 1 {
            self.fail(ENV_REDIS_ADDRS, "standalone mode takes exactly one address");
        }
        RedisSettings {
            mode,
            addrs,
            password: (self.get)(ENV_REDIS_PASSWORD).filter(|p| !p.is_empty()).map(Secret::Value),
            sentinel_password: (self.get)(ENV_REDIS_SENTINEL_PASSWORD).filter(|p| !p.is_empty()).map(Secret::Value),
            timeout: self.duration::<RedisTimeout>(ENV_REDIS_TIMEOUT, d.timeout),
            retry_budget: self.duration::<RedisRetryBudget>(ENV_REDIS_RETRY_BUDGET, d.retry_budget),
            topology_poll: self.duration::<TopologyPoll>(ENV_TOPOLOGY_POLL, d.topology_poll),
            durable_publish: self.flag(ENV_DURABLE_PUBLISH),
        }
    }
}

/// A duration type whose bounds apply to a variable.
trait BoundedDuration {
    fn parse_text(raw: &str) -> Result<Duration, String>;
}

impl<const MIN: u64, const MAX: u64> BoundedDuration for Bounded<MIN, MAX> {
    fn parse_text(raw: &str) -> Result<Duration, String> {
        Bounded::<MIN, MAX>::parse(raw).map(|d| d.as_duration()).map_err(|e| e.to_string())
    }
}

/// `host:port` with a port from 1 to 65535 and a host without a scheme or spaces; IPv6
/// hosts in brackets. The CRD's pattern for external addresses says the same.
pub fn check_host_port(a: &str) -> Result<(), String> {
    let Some((host, port)) = a.rsplit_once(':') else {
        return Err(format!("{a:?} is not host:port (no port)"));
    };
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        return Err(format!("{a:?} has no valid port (1 to 65535)"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !(bracketed || plain) {
        return Err(format!("{a:?} is not host:port (the host may not contain a scheme, a path or spaces)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<SidecarSettings, Vec<SettingError>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SidecarSettings::from_lookup(&|k| map.get(k).cloned())
    }

    fn round_trip(s: &SidecarSettings) -> Result<SidecarSettings, Vec<SettingError>> {
        let env: HashMap<&str, String> = s.to_process_env().expect("plain values").into_iter().collect();
        SidecarSettings::from_lookup(&|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_an_explicit_auth_choice() {
        let c = load(&[(ENV_AUTH, "none")]).expect("defaults are valid");
        assert_eq!(c.ws_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.redis.mode, RedisMode::Standalone);
        assert_eq!(c.history_size, 1000);
        assert_eq!(c.history_ttl, Duration::from_secs(600));
        assert_eq!(c.auth, Auth::None);
        assert!(!c.redis.durable_publish);
        assert_eq!(c, SidecarSettings::new(Auth::None), "the parser's defaults are the type's");
    }

    #[test]
    fn missing_auth_is_an_error_not_anonymous() {
        let errs = load(&[]).expect_err("auth must be chosen");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].var, ENV_AUTH);
    }

    #[test]
    fn reports_every_bad_variable_at_once() {
        let errs = load(&[
            (ENV_AUTH, "basic"),
            (ENV_WS_ADDR, "localhost"),
            (ENV_REDIS_MODE, "clustr"),
            (ENV_HISTORY_SIZE, "0"),
            (ENV_HISTORY_TTL, "ten minutes"),
            (ENV_DURABLE_PUBLISH, "maybe"),
            (ENV_REDIS_ADDRS, "redis"),
        ])
        .expect_err("all invalid");
        let vars: Vec<&str> = errs.iter().map(|e| e.var).collect();
        for v in [ENV_AUTH, ENV_WS_ADDR, ENV_REDIS_MODE, ENV_HISTORY_SIZE, ENV_HISTORY_TTL, ENV_DURABLE_PUBLISH, ENV_REDIS_ADDRS] {
            assert!(vars.contains(&v), "{v} not reported in {errs:?}");
        }
    }

    #[test]
    fn worker_threads_are_the_cpus_unless_set_and_a_set_count_round_trips() {
        assert_eq!(load(&[(ENV_AUTH, "none")]).expect("valid").worker_threads, None);
        let c = load(&[(ENV_AUTH, "none"), (ENV_WORKER_THREADS, "1")]).expect("valid");
        assert_eq!(c.worker_threads, Some(1));
        assert_eq!(round_trip(&c).expect("round trip").worker_threads, Some(1));
        for bad in ["0", "many", "100000"] {
            let errs = load(&[(ENV_AUTH, "none"), (ENV_WORKER_THREADS, bad)]).expect_err("out of range");
            assert_eq!((errs.len(), errs[0].var), (1, ENV_WORKER_THREADS), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn hs256_needs_a_long_enough_secret() {
        let errs = load(&[(ENV_AUTH, "hs256"), (ENV_JWT_SECRET, "short")]).expect_err("too short");
        assert_eq!(errs[0].var, ENV_JWT_SECRET);
        let c = load(&[(ENV_AUTH, "hs256"), (ENV_JWT_SECRET, &"k".repeat(32))]).expect("valid");
        assert!(matches!(c.auth, Auth::Hs256(_)));
    }

    #[test]
    fn cluster_and_sentinel_modes() {
        let c = load(&[(ENV_AUTH, "none"), (ENV_REDIS_MODE, "cluster"), (ENV_REDIS_ADDRS, "a:1, b:2")]).expect("valid");
        assert_eq!(c.redis.mode, RedisMode::Cluster);
        assert_eq!(c.redis.addrs, vec!["a:1", "b:2"]);
        let c = load(&[(ENV_AUTH, "none"), (ENV_REDIS_MODE, "sentinel"), (ENV_REDIS_SENTINEL_MASTER, "m1")]).expect("valid");
        assert_eq!(c.redis.mode, RedisMode::Sentinel { master: "m1".into() });
    }

    #[test]
    fn drain_must_fit_its_timeout() {
        let errs = load(&[(ENV_AUTH, "none"), (ENV_DRAIN_SPREAD, "30s"), (ENV_DRAIN_TIMEOUT, "20s")]).expect_err("too long");
        assert_eq!(errs[0].var, ENV_DRAIN_SPREAD);
        let errs = load(&[(ENV_AUTH, "none"), (ENV_RESUME_KEY, "short")]).expect_err("short key");
        assert_eq!(errs[0].var, ENV_RESUME_KEY);
    }

    /// What the outside test saw admitted by the CRD and refused by every sidecar.
    #[test]
    fn compound_and_zero_durations_the_crd_admits_are_read() {
        let c = load(&[
            (ENV_AUTH, "none"),
            (ENV_DRAIN_TIMEOUT, "1m30s"),
            (ENV_DRAIN_SPREAD, "0s"),
            (ENV_RESUME_WINDOW, "15s"),
            (ENV_HISTORY_TTL, "59m57s"),
        ])
        .expect("valid");
        assert_eq!(c.drain_timeout, Duration::from_secs(90));
        assert_eq!(c.drain_spread, Duration::ZERO);
        assert_eq!(c.history_ttl, Duration::from_secs(3597));
        assert_eq!(c.position_checkpoint(), Duration::from_millis(7500), "half of a short resume window");
    }

    /// Huge values used to panic (exit 101) at start or at first use.
    #[test]
    fn huge_durations_are_refused_with_their_range() {
        for var in [
            ENV_DRAIN_SPREAD,
            ENV_SESSION_CHECKPOINT,
            ENV_DRAIN_TIMEOUT,
            ENV_HANDSHAKE_TIMEOUT,
            ENV_REDIS_RETRY_BUDGET,
            ENV_TOPOLOGY_POLL,
            ENV_HISTORY_TTL,
        ] {
            for huge in ["18446744073709551615s", "9223372036854775s", "100000h"] {
                let errs = load(&[(ENV_AUTH, "none"), (var, huge)]).expect_err(&format!("{var}={huge}"));
                assert!(errs.iter().any(|e| e.var == var), "{var}={huge}: {errs:?}");
            }
        }
    }

    #[test]
    fn addresses_are_host_and_port() {
        for bad in ["redis.example.com", "10.0.0.5:99999", "10.0.0.5:0", "redis://10.0.0.5:6379", ":6379", "a b:1"] {
            let errs = load(&[(ENV_AUTH, "none"), (ENV_REDIS_ADDRS, bad)]).expect_err(bad);
            assert_eq!(errs[0].var, ENV_REDIS_ADDRS, "{bad}");
        }
        for good in ["redis:6379", "10.0.0.5:6379", "[::1]:6379", "my_host.internal:7000"] {
            assert!(check_host_port(good).is_ok(), "{good}");
        }
        let errs = load(&[(ENV_AUTH, "none"), (ENV_REDIS_ADDRS, "a:1,b:2")]).expect_err("standalone takes one");
        assert!(errs[0].problem.contains("exactly one"));
    }

    #[test]
    fn what_to_env_writes_the_parser_reads_back() {
        let mut s = SidecarSettings::new(Auth::Hs256(Secret::Value("s".repeat(40))));
        s.redis = RedisSettings {
            mode: RedisMode::Sentinel { master: "m".into() },
            addrs: vec!["a:26379".into(), "b:26379".into()],
            password: Some(Secret::Value("pw".into())),
            sentinel_password: Some(Secret::Value("spw".into())),
            durable_publish: true,
            ..RedisSettings::default()
        };
        s.drain_timeout = Duration::from_secs(90);
        s.drain_spread = Duration::ZERO;
        s.history_ttl = Duration::from_millis(3_597_500);
        s.resume_key = Some(Secret::Value("k".repeat(32)));
        s.session_position_checkpoint = Some(Duration::from_secs(20));
        s.node_name = NodeName::Value("pod-1".into());
        assert_eq!(round_trip(&s).expect("parses"), s);
        let refs = SidecarSettings {
            redis: RedisSettings { password: Some(Secret::Ref { name: "n".into(), key: "k".into() }), ..s.redis.clone() },
            ..s
        };
        assert!(refs.to_process_env().is_err(), "a Secret reference is no process value");
    }
}
