//! Runs commands on the primary that owns a slot, in every mode, through failovers.
//!
//! One multiplexed connection per node for ordinary commands, and one more for pipelines
//! that block on the server (a durable publish's `WAIT`): Redis holds every later command
//! of a blocked connection until the block ends, so a `WAIT` for a replica that is still
//! copying must not stall the reads, session writes and plain publishes behind it. A
//! command that Redis refused without running it
//! (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, READONLY, or a connection that
//! could not be opened) is retried against a refreshed slot map until the retry budget is
//! spent. A command whose connection broke after it was sent may or may not have run, so it
//! is retried only when the caller says it is idempotent: a publish is not, and a retried
//! publish would deliver the same message twice under two offsets. Its caller gets
//! [`RouterError::Unconfirmed`] instead, which it must not report as "not done".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Pipeline, RedisError, Value};
use tokio::sync::OnceCell;

use super::Addr;
use super::topology::{SlotMap, Topology, TopologyError};

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("slot {0} has no reachable primary")]
    Uncovered(u16),
    /// The connection broke (or the answer timed out) after a command that is not safe to
    /// repeat was sent: it may or may not have run.
    #[error("no answer from Redis after the command was sent ({0}): it may or may not have run")]
    Unconfirmed(RedisError),
}

impl RouterError {
    /// The server's error code (`NOSCRIPT`, `MOVED`...), if the error came from Redis.
    pub fn code(&self) -> Option<&str> {
        match self {
            RouterError::Redis(e) => e.code(),
            _ => None,
        }
    }
}

/// Which of a node's connections a pipeline goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Commands that answer at once.
    Shared,
    /// Pipelines that may block on the server (`WAIT`).
    Blocking,
}

/// How the router treats an error.
enum Verdict {
    Moved(Addr),
    Ask(Addr),
    /// Refused without running: safe to retry after a refresh.
    Refused,
    /// The connection broke; the command may have run.
    Broken,
    Fatal,
}

/// The node named by a MOVED/ASK error, also when it came back inside a pipeline.
fn redirect_target(e: &RedisError) -> Option<Addr> {
    if let Some((addr, _)) = e.redirect_node() {
        return Some(Addr::from(addr));
    }
    let errors = e.clone().into_server_errors()?;
    let detail = errors.first()?.1.details()?;
    detail.split_ascii_whitespace().nth(1).map(Addr::from)
}

fn classify(e: &RedisError) -> Verdict {
    let redirect = || redirect_target(e);
    match e.code() {
        Some("MOVED") => redirect().map_or(Verdict::Refused, Verdict::Moved),
        Some("ASK") => redirect().map_or(Verdict::Refused, Verdict::Ask),
        Some("TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY") => Verdict::Refused,
        _ if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error() => Verdict::Broken,
        _ => Verdict::Fatal,
    }
}

/// A node connection, opened once by whoever needs it first.
type ConnCell = Arc<OnceCell<MultiplexedConnection>>;

pub struct Router {
    topology: Topology,
    map: RwLock<Arc<SlotMap>>,
    conns: Mutex<HashMap<(Addr, Lane), ConnCell>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    retry_budget: Duration,
    /// Called whenever a node connection is dropped (metrics).
    on_reconnect: Box<dyn Fn() + Send + Sync>,
    /// Node connections dropped so far (see [`Router::dropped_connections`]).
    dropped: std::sync::atomic::AtomicU64,
}

/// Refreshes closer together than this share one resolution.
const REFRESH_DEDUP: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

impl Router {
    pub fn new(topology: Topology, retry_budget: Duration, on_reconnect: Box<dyn Fn() + Send + Sync>) -> Router {
        Router {
            topology,
            map: RwLock::new(Arc::new(SlotMap::default())),
            conns: Mutex::new(HashMap::new()),
            last_refresh: tokio::sync::Mutex::new(None),
            retry_budget,
            on_reconnect,
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn slot_map(&self) -> Arc<SlotMap> {
        self.map.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Re-resolves the slot map (callers arriving within 50 ms share one resolution).
    pub async fn refresh(&self) -> Result<Arc<SlotMap>, TopologyError> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFRESH_DEDUP) {
            return Ok(self.slot_map());
        }
        let known = self.slot_map().primaries();
        let map = Arc::new(self.topology.resolve(&known).await?);
        if let Ok(mut m) = self.map.write() {
            *m = map.clone();
        }
        *last = Some(Instant::now());
        Ok(map)
    }

    async fn conn(&self, addr: &Addr, lane: Lane) -> Result<MultiplexedConnection, RedisError> {
        let cell = {
            let mut conns = self.conns.lock().map_err(|_| RedisError::from((redis::ErrorKind::Client, "poisoned")))?;
            conns.entry((addr.clone(), lane)).or_default().clone()
        };
        let conn = cell.get_or_try_init(|| super::connect(addr, self.topology.password(), self.topology.timeout())).await?;
        Ok(conn.clone())
    }

    /// Drops both of a node's connections (a broken one says the node is in trouble).
    fn forget(&self, addr: &Addr) {
        let removed = self.conns.lock().is_ok_and(|mut conns| {
            let before = conns.len();
            conns.retain(|(a, _), _| a != addr);
            conns.len() < before
        });
        if removed {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (self.on_reconnect)();
        }
    }

    /// How many node connections have been dropped so far: when it moves, a node may have
    /// restarted and lost what it held.
    pub fn dropped_connections(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// PINGs a node over the connection commands use, opening it (with AUTH) when there is
    /// none: what readiness checks, so a client's first command does not pay for it.
    pub async fn ping(&self, addr: &Addr) -> Result<(), RouterError> {
        let answer = match self.conn(addr, Lane::Shared).await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await,
            Err(e) => Err(e),
        };
        answer.map(drop).map_err(|e| {
            self.forget(addr);
            RouterError::Redis(e)
        })
    }

    /// Runs `pipe` on the primary owning `slot` and returns one value per command.
    pub async fn query(&self, slot: u16, pipe: &Pipeline, idempotent: bool) -> Result<Vec<Value>, RouterError> {
        self.query_in(Lane::Shared, slot, pipe, idempotent).await
    }

    /// [`Router::query`] over the node's connection for `lane`.
    pub async fn query_in(&self, lane: Lane, slot: u16, pipe: &Pipeline, idempotent: bool) -> Result<Vec<Value>, RouterError> {
        let deadline = Instant::now() + self.retry_budget;
        let mut backoff = Duration::from_millis(20);
        let mut redirect: Option<(Addr, bool)> = None;
        loop {
            let (addr, asking) = match redirect.take() {
                Some(r) => r,
                None => match self.slot_map().owner(slot).cloned() {
                    Some(a) => (a, false),
                    None => match self.refresh().await {
                        Ok(map) if map.owner(slot).is_some() => continue,
                        Ok(_) if Instant::now() < deadline => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                        Ok(_) => return Err(RouterError::Uncovered(slot)),
                        Err(e) if Instant::now() < deadline => {
                            tracing::debug!(error = %e, "topology refresh failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    },
                },
            };
            let result = match self.conn(&addr, lane).await {
                Ok(mut conn) if asking => {
                    let mut asked = redis::pipe();
                    asked.cmd("ASKING");
                    for c in pipe.cmd_iter() {
                        asked.add_command(c.clone());
                    }
                    asked.query_async::<Vec<Value>>(&mut conn).await.map(|mut v| v.split_off(1))
                }
                Ok(mut conn) => pipe.query_async::<Vec<Value>>(&mut conn).await,
                Err(e) => {
                    // Never sent: always safe to retry elsewhere.
                    self.forget(&addr);
                    if Instant::now() >= deadline {
                        return Err(e.into());
                    }
                    let _ = self.refresh().await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let err = match result {
                Ok(values) => return Ok(values),
                Err(e) => e,
            };
            let verdict = classify(&err);
            if matches!(verdict, Verdict::Broken) {
                self.forget(&addr);
                if !idempotent {
                    // Never "not done": the caller must not tell its client it failed.
                    return Err(RouterError::Unconfirmed(err));
                }
            }
            if Instant::now() >= deadline {
                return Err(err.into());
            }
            match verdict {
                Verdict::Moved(to) => {
                    let _ = self.refresh().await;
                    redirect = Some((to, false));
                }
                Verdict::Ask(to) => redirect = Some((to, true)),
                Verdict::Refused => {
                    let _ = self.refresh().await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Verdict::Broken => {
                    let _ = self.refresh().await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Verdict::Fatal => return Err(err.into()),
            }
        }
    }
}
