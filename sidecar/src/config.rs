//! Sidecar configuration from environment variables.
//!
//! Each variable's name (`ENV_*`) stands beside its default (`DEFAULT_*`). [`Config::from_env`]
//! reads them all and reports every bad one at once; `main` then exits with code 64
//! (EX_USAGE) so a misconfigured pod fails loudly at start instead of at first use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const ENV_WS_ADDR: &str = "SF_WS_ADDR";
pub const DEFAULT_WS_ADDR: &str = "0.0.0.0:8080";
pub const ENV_ADMIN_ADDR: &str = "SF_ADMIN_ADDR";
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:9090";
/// The app's localhost API (publish); loopback by default because it is unauthenticated.
pub const ENV_APP_API_ADDR: &str = "SF_APP_API_ADDR";
pub const DEFAULT_APP_API_ADDR: &str = "127.0.0.1:8081";
pub const ENV_NODE_NAME: &str = "SF_NODE_NAME";
pub const DEFAULT_NODE_NAME: &str = "sidecar";

pub const ENV_REDIS_MODE: &str = "SF_REDIS_MODE";
pub const DEFAULT_REDIS_MODE: &str = "standalone";
/// Comma-separated `host:port` list: the node (standalone), seed nodes (cluster) or the
/// Sentinels (sentinel).
pub const ENV_REDIS_ADDRS: &str = "SF_REDIS_ADDRS";
pub const DEFAULT_REDIS_ADDRS: &str = "127.0.0.1:6379";
pub const ENV_REDIS_SENTINEL_MASTER: &str = "SF_REDIS_SENTINEL_MASTER";
pub const DEFAULT_REDIS_SENTINEL_MASTER: &str = "mymaster";
pub const ENV_REDIS_PASSWORD: &str = "SF_REDIS_PASSWORD";
pub const ENV_REDIS_TIMEOUT: &str = "SF_REDIS_TIMEOUT";
pub const DEFAULT_REDIS_TIMEOUT: &str = "2s";
/// How long a command may keep retrying through a failover before it fails.
pub const ENV_REDIS_RETRY_BUDGET: &str = "SF_REDIS_RETRY_BUDGET";
pub const DEFAULT_REDIS_RETRY_BUDGET: &str = "10s";
pub const ENV_TOPOLOGY_POLL: &str = "SF_TOPOLOGY_POLL";
pub const DEFAULT_TOPOLOGY_POLL: &str = "5s";
pub const ENV_DURABLE_PUBLISH: &str = "SF_DURABLE_PUBLISH";
pub const DEFAULT_DURABLE_PUBLISH: &str = "false";

pub const ENV_HISTORY_SIZE: &str = "SF_HISTORY_SIZE";
pub const DEFAULT_HISTORY_SIZE: &str = "1000";
pub const ENV_HISTORY_TTL: &str = "SF_HISTORY_TTL";
pub const DEFAULT_HISTORY_TTL: &str = "10m";
pub const ENV_RECOVERY_PAGE: &str = "SF_RECOVERY_PAGE";
pub const DEFAULT_RECOVERY_PAGE: &str = "100";
pub const ENV_PRESENCE_TTL: &str = "SF_PRESENCE_TTL";
pub const DEFAULT_PRESENCE_TTL: &str = "30s";

pub const ENV_MAX_CONNECTIONS: &str = "SF_MAX_CONNECTIONS";
pub const DEFAULT_MAX_CONNECTIONS: &str = "100000";
pub const ENV_MAX_SUBSCRIPTIONS: &str = "SF_MAX_SUBSCRIPTIONS";
pub const DEFAULT_MAX_SUBSCRIPTIONS: &str = "256";
pub const ENV_SEND_QUEUE: &str = "SF_SEND_QUEUE";
pub const DEFAULT_SEND_QUEUE: &str = "1024";
pub const ENV_MAX_FRAME_BYTES: &str = "SF_MAX_FRAME_BYTES";
pub const DEFAULT_MAX_FRAME_BYTES: &str = "65536";
pub const ENV_PING_INTERVAL: &str = "SF_PING_INTERVAL";
pub const DEFAULT_PING_INTERVAL: &str = "25s";
pub const ENV_IDLE_TIMEOUT: &str = "SF_IDLE_TIMEOUT";
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
pub const ENV_HANDSHAKE_TIMEOUT: &str = "SF_HANDSHAKE_TIMEOUT";
pub const DEFAULT_HANDSHAKE_TIMEOUT: &str = "10s";
/// The whole drain is bounded by this; the process exits when it runs out.
pub const ENV_DRAIN_TIMEOUT: &str = "SF_DRAIN_TIMEOUT";
pub const DEFAULT_DRAIN_TIMEOUT: &str = "60s";
/// Closes are paced evenly over this window so the rest of the fleet is not stormed.
pub const ENV_DRAIN_SPREAD: &str = "SF_DRAIN_SPREAD";
pub const DEFAULT_DRAIN_SPREAD: &str = "20s";
/// New connections are still accepted this long after a drain starts, while the pod's
/// endpoint is removed from Services.
pub const ENV_DRAIN_ACCEPT_GRACE: &str = "SF_DRAIN_ACCEPT_GRACE";
pub const DEFAULT_DRAIN_ACCEPT_GRACE: &str = "2s";

/// HMAC key for resume tokens, shared by every pod of a fleet (from a Secret). Without it
/// a random key is generated: tokens then only resume on the pod that issued them.
pub const ENV_RESUME_KEY: &str = "SF_RESUME_KEY";
/// The key before the last rotation; tokens signed with it are still accepted.
pub const ENV_RESUME_KEY_PREVIOUS: &str = "SF_RESUME_KEY_PREVIOUS";
pub const ENV_RESUME_WINDOW: &str = "SF_RESUME_WINDOW";
pub const DEFAULT_RESUME_WINDOW: &str = "5m";

/// How often sessions with changed subscriptions or state are written to Redis.
pub const ENV_SESSION_CHECKPOINT: &str = "SF_SESSION_CHECKPOINT";
pub const DEFAULT_SESSION_CHECKPOINT: &str = "1s";
/// How often a session whose only change is its positions is written. Under load every
/// position moves with every message, so this write is what the checkpoint costs (it was
/// a third of the sidecar's CPU at 1 s under the fan-out benchmark). A position checkpoint
/// that is older than the client only means resent duplicates after a SIGKILL (dropped by
/// offset), never a loss; a drain writes exact positions whatever this says.
pub const ENV_SESSION_POSITION_CHECKPOINT: &str = "SF_SESSION_POSITION_CHECKPOINT";
pub const DEFAULT_SESSION_POSITION_CHECKPOINT: &str = "10s";
/// Largest custom session state the app may set (`PUT /sessions/{sid}/state`), bytes.
pub const ENV_SESSION_STATE_MAX: &str = "SF_SESSION_STATE_MAX";
pub const DEFAULT_SESSION_STATE_MAX: &str = "16384";

/// `none`, `hs256` or `rs256`. Deliberately without a default: running without auth must be
/// a decision, not an accident.
pub const ENV_AUTH: &str = "SF_AUTH";
pub const ENV_JWT_SECRET: &str = "SF_JWT_SECRET";
pub const ENV_JWT_SECRET_FILE: &str = "SF_JWT_SECRET_FILE";
pub const ENV_JWT_PUBLIC_KEY_FILE: &str = "SF_JWT_PUBLIC_KEY_FILE";

/// Where the sidecar finds Redis and how it follows the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    Cluster,
    Sentinel { master: String },
}

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    None,
    Hs256 { secret: Vec<u8> },
    Rs256 { public_key_pem: Vec<u8> },
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub mode: RedisMode,
    pub addrs: Vec<String>,
    pub password: Option<String>,
    pub timeout: Duration,
    pub retry_budget: Duration,
    pub topology_poll: Duration,
    pub durable_publish: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub ws_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app_api_addr: SocketAddr,
    pub node_name: String,
    pub redis: RedisConfig,
    pub history_size: u32,
    pub history_ttl: Duration,
    pub recovery_page: u32,
    pub presence_ttl: Duration,
    pub max_connections: usize,
    pub max_subscriptions: usize,
    pub send_queue: usize,
    pub max_frame_bytes: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub drain_timeout: Duration,
    pub drain_spread: Duration,
    pub drain_accept_grace: Duration,
    pub resume_key: Option<Vec<u8>>,
    pub resume_key_previous: Option<Vec<u8>>,
    pub resume_window: Duration,
    pub session_checkpoint: Duration,
    pub session_position_checkpoint: Duration,
    pub session_state_max: usize,
    pub auth: AuthConfig,
}

/// One bad variable: which, what it held, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

/// Parses `500ms`, `30s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// Collects values and problems while reading every variable.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn raw(&self, var: &'static str, default: &str) -> String {
        (self.get)(var).unwrap_or_else(|| default.to_string())
    }

    fn fail(&mut self, var: &'static str, problem: impl Into<String>) {
        self.errors.push(ConfigError { var, problem: problem.into() });
    }

    fn addr(&mut self, var: &'static str, default: &str) -> SocketAddr {
        let raw = self.raw(var, default);
        raw.parse().unwrap_or_else(|_| {
            self.fail(var, format!("{raw:?} is not an ip:port address"));
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    fn duration(&mut self, var: &'static str, default: &str) -> Duration {
        let raw = self.raw(var, default);
        match parse_duration(&raw) {
            Some(d) if !d.is_zero() => d,
            _ => {
                self.fail(var, format!("{raw:?} is not a positive duration like 500ms, 30s, 10m"));
                Duration::from_secs(1)
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
        &mut self,
        var: &'static str,
        default: &str,
        min: T,
        max: T,
    ) -> T {
        let raw = self.raw(var, default);
        match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                self.fail(var, format!("{raw:?} is not a whole number from {min} to {max}"));
                min
            }
        }
    }

    fn flag(&mut self, var: &'static str, default: &str) -> bool {
        let raw = self.raw(var, default);
        match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.fail(var, format!("{raw:?} is not true or false"));
                false
            }
        }
    }

    fn file(&mut self, var: &'static str, path: &str) -> Vec<u8> {
        std::fs::read(PathBuf::from(path)).unwrap_or_else(|e| {
            self.fail(var, format!("cannot read {path:?}: {e}"));
            Vec::new()
        })
    }

    fn key(&mut self, var: &'static str) -> Option<Vec<u8>> {
        let key = (self.get)(var)?;
        if key.len() < 32 {
            self.fail(var, "a resume-token key must be at least 32 bytes");
        }
        Some(key.into_bytes())
    }

    fn auth(&mut self) -> AuthConfig {
        let Some(mode) = (self.get)(ENV_AUTH) else {
            self.fail(ENV_AUTH, "not set: choose hs256 or rs256 (with a key), or none to accept anonymous clients");
            return AuthConfig::None;
        };
        match mode.trim() {
            "none" => AuthConfig::None,
            "hs256" => {
                let secret = match ((self.get)(ENV_JWT_SECRET), (self.get)(ENV_JWT_SECRET_FILE)) {
                    (Some(s), None) => s.into_bytes(),
                    (None, Some(path)) => self.file(ENV_JWT_SECRET_FILE, &path),
                    (Some(_), Some(_)) => {
                        self.fail(ENV_JWT_SECRET, format!("set either it or {ENV_JWT_SECRET_FILE}, not both"));
                        Vec::new()
                    }
                    (None, None) => {
                        self.fail(ENV_JWT_SECRET, format!("hs256 needs it or {ENV_JWT_SECRET_FILE}"));
                        Vec::new()
                    }
                };
                if !secret.is_empty() && secret.len() < 32 {
                    self.fail(ENV_JWT_SECRET, "an HS256 secret must be at least 32 bytes");
                }
                AuthConfig::Hs256 { secret }
            }
            "rs256" => match (self.get)(ENV_JWT_PUBLIC_KEY_FILE) {
                Some(path) => AuthConfig::Rs256 { public_key_pem: self.file(ENV_JWT_PUBLIC_KEY_FILE, &path) },
                None => {
                    self.fail(ENV_JWT_PUBLIC_KEY_FILE, "rs256 needs a PEM public key file");
                    AuthConfig::None
                }
            },
            other => {
                self.fail(ENV_AUTH, format!("{other:?} is not one of none, hs256, rs256"));
                AuthConfig::None
            }
        }
    }

    fn redis(&mut self) -> RedisConfig {
        let mode_raw = self.raw(ENV_REDIS_MODE, DEFAULT_REDIS_MODE);
        let mode = match mode_raw.trim() {
            "standalone" => RedisMode::Standalone,
            "cluster" => RedisMode::Cluster,
            "sentinel" => RedisMode::Sentinel { master: self.raw(ENV_REDIS_SENTINEL_MASTER, DEFAULT_REDIS_SENTINEL_MASTER) },
            other => {
                self.fail(ENV_REDIS_MODE, format!("{other:?} is not one of standalone, cluster, sentinel"));
                RedisMode::Standalone
            }
        };
        let addrs: Vec<String> =
            self.raw(ENV_REDIS_ADDRS, DEFAULT_REDIS_ADDRS).split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            self.fail(ENV_REDIS_ADDRS, "needs at least one host:port");
        }
        for a in &addrs {
            let port_ok = a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !port_ok {
                self.fail(ENV_REDIS_ADDRS, format!("{a:?} is not host:port"));
            }
        }
        if mode == RedisMode::Standalone && addrs.len() > 1 {
            self.fail(ENV_REDIS_ADDRS, "standalone mode takes exactly one address");
        }
        RedisConfig {
            mode,
            addrs,
            password: (self.get)(ENV_REDIS_PASSWORD).filter(|p| !p.is_empty()),
            timeout: self.duration(ENV_REDIS_TIMEOUT, DEFAULT_REDIS_TIMEOUT),
            retry_budget: self.duration(ENV_REDIS_RETRY_BUDGET, DEFAULT_REDIS_RETRY_BUDGET),
            topology_poll: self.duration(ENV_TOPOLOGY_POLL, DEFAULT_TOPOLOGY_POLL),
            durable_publish: self.flag(ENV_DURABLE_PUBLISH, DEFAULT_DURABLE_PUBLISH),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, Vec<ConfigError>> {
        Config::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads every variable through `get` and returns all problems, not just the first.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<ConfigError>> {
        let mut r = Reader { get, errors: Vec::new() };
        let node_name = (get)(ENV_NODE_NAME).or_else(|| (get)("HOSTNAME")).unwrap_or_else(|| DEFAULT_NODE_NAME.to_string());
        let config = Config {
            ws_addr: r.addr(ENV_WS_ADDR, DEFAULT_WS_ADDR),
            admin_addr: r.addr(ENV_ADMIN_ADDR, DEFAULT_ADMIN_ADDR),
            app_api_addr: r.addr(ENV_APP_API_ADDR, DEFAULT_APP_API_ADDR),
            node_name,
            redis: r.redis(),
            history_size: r.number(ENV_HISTORY_SIZE, DEFAULT_HISTORY_SIZE, 1, 10_000_000),
            history_ttl: r.duration(ENV_HISTORY_TTL, DEFAULT_HISTORY_TTL),
            recovery_page: r.number(ENV_RECOVERY_PAGE, DEFAULT_RECOVERY_PAGE, 1, 10_000),
            presence_ttl: r.duration(ENV_PRESENCE_TTL, DEFAULT_PRESENCE_TTL),
            max_connections: r.number(ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS, 1, 10_000_000),
            max_subscriptions: r.number(ENV_MAX_SUBSCRIPTIONS, DEFAULT_MAX_SUBSCRIPTIONS, 1, 100_000),
            send_queue: r.number(ENV_SEND_QUEUE, DEFAULT_SEND_QUEUE, 1, 1_000_000),
            max_frame_bytes: r.number(ENV_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES, 256, 64 << 20),
            ping_interval: r.duration(ENV_PING_INTERVAL, DEFAULT_PING_INTERVAL),
            idle_timeout: r.duration(ENV_IDLE_TIMEOUT, DEFAULT_IDLE_TIMEOUT),
            handshake_timeout: r.duration(ENV_HANDSHAKE_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT),
            drain_timeout: r.duration(ENV_DRAIN_TIMEOUT, DEFAULT_DRAIN_TIMEOUT),
            drain_spread: r.duration(ENV_DRAIN_SPREAD, DEFAULT_DRAIN_SPREAD),
            drain_accept_grace: r.duration(ENV_DRAIN_ACCEPT_GRACE, DEFAULT_DRAIN_ACCEPT_GRACE),
            resume_key: r.key(ENV_RESUME_KEY),
            resume_key_previous: r.key(ENV_RESUME_KEY_PREVIOUS),
            resume_window: r.duration(ENV_RESUME_WINDOW, DEFAULT_RESUME_WINDOW),
            session_checkpoint: r.duration(ENV_SESSION_CHECKPOINT, DEFAULT_SESSION_CHECKPOINT),
            session_position_checkpoint: r.duration(ENV_SESSION_POSITION_CHECKPOINT, DEFAULT_SESSION_POSITION_CHECKPOINT),
            session_state_max: r.number(ENV_SESSION_STATE_MAX, DEFAULT_SESSION_STATE_MAX, 2, 1 << 20),
            auth: r.auth(),
        };
        if config.drain_accept_grace + config.drain_spread >= config.drain_timeout {
            r.fail(ENV_DRAIN_SPREAD, format!("{ENV_DRAIN_ACCEPT_GRACE} + {ENV_DRAIN_SPREAD} must be shorter than {ENV_DRAIN_TIMEOUT}"));
        }
        if config.session_checkpoint * 2 > config.resume_window {
            r.fail(ENV_SESSION_CHECKPOINT, format!("must be at most half of {ENV_RESUME_WINDOW}, or sessions expire between checkpoints"));
        }
        if config.session_position_checkpoint < config.session_checkpoint || config.session_position_checkpoint * 2 > config.resume_window {
            r.fail(
                ENV_SESSION_POSITION_CHECKPOINT,
                format!("must be at least {ENV_SESSION_CHECKPOINT} and at most half of {ENV_RESUME_WINDOW}"),
            );
        }
        if r.errors.is_empty() { Ok(config) } else { Err(r.errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_an_explicit_auth_choice() {
        let c = load(&[(ENV_AUTH, "none")]).expect("defaults are valid");
        assert_eq!(c.ws_addr.to_string(), DEFAULT_WS_ADDR);
        assert_eq!(c.redis.mode, RedisMode::Standalone);
        assert_eq!(c.history_size, 1000);
        assert_eq!(c.history_ttl, Duration::from_secs(600));
        assert_eq!(c.auth, AuthConfig::None);
        assert!(!c.redis.durable_publish);
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
    fn hs256_needs_a_long_enough_secret() {
        let errs = load(&[(ENV_AUTH, "hs256"), (ENV_JWT_SECRET, "short")]).expect_err("too short");
        assert_eq!(errs[0].var, ENV_JWT_SECRET);
        let c = load(&[(ENV_AUTH, "hs256"), (ENV_JWT_SECRET, &"k".repeat(32))]).expect("valid");
        assert!(matches!(c.auth, AuthConfig::Hs256 { .. }));
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
