//! Paced drain: how a pod leaves without losing a message or storming the fleet.
//!
//! SIGTERM, or `POST /drain` on the admin port (a preStop hook), starts it:
//! 1. `/ready` turns false at once, so the pod leaves its Services' endpoints;
//! 2. new connections are still accepted for `SF_DRAIN_ACCEPT_GRACE` (endpoint removal
//!    takes a moment to propagate), then refused;
//! 3. every connection is told to go, one at a time, evenly over `SF_DRAIN_SPREAD`: the i-th
//!    of N at `start + spread * i / N`. Each gets its queued messages, a final session
//!    checkpoint, then `reconnect` with its resume token and a jittered `delayMs` (below
//!    500 ms and below the pacing's step `spread / N`: the pacing already keeps clients
//!    from reconnecting together, and a longer jitter only holds the last one, and with it
//!    the pod's exit, back), then close 1012;
//! 4. the process exits when the last connection is gone, or at `SF_DRAIN_TIMEOUT`.
//!
//! Clients resume on another pod from their offsets or the session's checkpoint, so nothing
//! published meanwhile is lost.
//!
//! Shedding (`POST /shed?count=N&spreadMs=M`, the operator's rebalancing after a scale-up)
//! is the same handoff for N of the connections, paced over M, while the pod stays ready and
//! keeps accepting: the oldest connections go first, so a client that just arrived (maybe
//! one shed by another pod, maybe one still subscribing) is not moved again, and their
//! clients reconnect through the Service, which spreads them over the pods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketfleet_api::admin::DrainStatus;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::delivery::hub::{ConnId, ConnSignals};
use crate::metrics::Metrics;

#[derive(Default)]
pub struct Drain {
    requested: Notify,
    started: AtomicBool,
    finished: AtomicBool,
    /// Stay after the drain until stopped (`POST /drain?hold=true`).
    hold: AtomicBool,
    /// Every listed connection has been told to go (what a preStop hook waits for).
    all_told: AtomicBool,
    /// A preStop hook asked (`/drain/prestop`): its answer must get out before the exit.
    prestop_asked: AtomicBool,
    all_told_wake: Notify,
    total: AtomicUsize,
    told: AtomicUsize,
    /// A shed in progress (one at a time).
    shedding: AtomicBool,
    /// The step of the pacing under way (drain or shed), in milliseconds: the bound of the
    /// jitter a told connection adds to its client's reconnect. Zero when none was set.
    step_ms: AtomicU64,
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    live: HashMap<ConnId, Arc<ConnSignals>>,
    /// Set once the drain took its list: later arrivals (a handshake that was already under
    /// way when the listener closed) are told to go as soon as they register.
    listed: bool,
}

fn tell(signals: &ConnSignals) {
    signals.drain.store(true, Ordering::Release);
    signals.wake.notify_one();
}

/// The open connections, oldest first (connection ids grow).
fn oldest_first(c: &Connections) -> Vec<Arc<ConnSignals>> {
    let mut v: Vec<(ConnId, Arc<ConnSignals>)> = c.live.iter().map(|(id, s)| (*id, s.clone())).collect();
    v.sort_by_key(|(id, _)| *id);
    v.into_iter().map(|(_, s)| s).collect()
}

/// Tells each connection to go, the i-th of n at `start + spread * i / n`, calling `told`
/// after each; stops early once `stop` holds.
async fn tell_paced(order: Vec<Arc<ConnSignals>>, spread: Duration, stop: impl Fn() -> bool, mut told: impl FnMut()) {
    let (from, n) = (Instant::now(), order.len());
    for (i, signals) in order.into_iter().enumerate() {
        tokio::time::sleep_until(from + spread.mul_f64(i as f64 / n as f64)).await;
        if stop() {
            return;
        }
        tell(&signals);
        told();
    }
}

/// The most a told client is asked to wait before reconnecting, whatever the pacing.
const MAX_RECONNECT_JITTER: Duration = Duration::from_millis(500);

/// The drain's pacing settings.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub accept_grace: Duration,
    pub spread: Duration,
    pub timeout: Duration,
}

impl Drain {
    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The jitter bound for the `delayMs` of a connection told to go: the pacing's step
    /// (`spread / N`) capped at [`MAX_RECONNECT_JITTER`].
    pub fn reconnect_jitter(&self) -> Duration {
        match self.step_ms.load(Ordering::Relaxed) {
            0 => MAX_RECONNECT_JITTER,
            ms => Duration::from_millis(ms).min(MAX_RECONNECT_JITTER),
        }
    }

    /// Records the step of a pacing of `n` connections over `spread`.
    fn pace_step(&self, spread: Duration, n: usize) {
        let step = spread.as_millis() as u64 / n.max(1) as u64;
        // At least 1 ms: zero means "not set".
        self.step_ms.store(step.max(1), Ordering::Relaxed);
    }

    pub fn register(&self, id: ConnId, signals: Arc<ConnSignals>) {
        let mut c = self.connections();
        if c.listed {
            tell(&signals);
        }
        c.live.insert(id, signals);
    }

    pub fn unregister(&self, id: ConnId) {
        self.connections().live.remove(&id);
    }

    /// Calls `f` for every registered connection (the registry is the pod's list of live
    /// connections; the keepalive walks it too).
    pub fn each_live(&self, mut f: impl FnMut(ConnId, &ConnSignals)) {
        for (id, signals) in &self.connections().live {
            f(*id, signals);
        }
    }

    /// Asks for a drain (idempotent); [`Drain::requested`] wakes.
    pub fn request(&self) {
        self.requested.notify_one();
    }

    /// Asks for a drain after which the process stays until it is stopped.
    pub fn request_held(&self) {
        self.hold.store(true, Ordering::Relaxed);
        self.request();
    }

    pub fn held(&self) -> bool {
        self.hold.load(Ordering::Relaxed)
    }

    pub async fn requested(&self) {
        self.requested.notified().await
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Asks for a drain on behalf of a preStop hook, which waits for its answer.
    pub fn request_for_prestop(&self) {
        self.prestop_asked.store(true, Ordering::Release);
        self.request();
    }

    /// Whether a preStop hook asked: the process then leaves its answer time to get out.
    pub fn prestop_asked(&self) -> bool {
        self.prestop_asked.load(Ordering::Acquire)
    }

    /// Waits until every connection has been told to go (at most `limit`); true when so.
    pub async fn all_told(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let woken = self.all_told_wake.notified();
                if self.all_told.load(Ordering::Acquire) {
                    return;
                }
                woken.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Tells up to `count` of the oldest connections to go, evenly over `spread`; returns
    /// how many it will tell, or None when refused (a drain or another shed is under way).
    pub fn shed(self: &Arc<Self>, count: usize, spread: Duration, metrics: Arc<Metrics>) -> Option<usize> {
        if self.started() || self.shedding.swap(true, Ordering::AcqRel) {
            return None;
        }
        let victims: Vec<Arc<ConnSignals>> = oldest_first(&self.connections()).into_iter().take(count).collect();
        let n = victims.len();
        self.pace_step(spread, n);
        let this = self.clone();
        tokio::spawn(async move {
            // A drain that starts meanwhile tells everyone, these included.
            tell_paced(
                victims,
                spread,
                || this.started(),
                || {
                    metrics.shed.inc();
                },
            )
            .await;
            this.shedding.store(false, Ordering::Release);
        });
        tracing::info!(connections = n, spread = ?spread, "shedding");
        Some(n)
    }

    pub fn status(&self) -> DrainStatus {
        DrainStatus {
            draining: self.started(),
            total: self.total.load(Ordering::Relaxed) as u64,
            told: self.told.load(Ordering::Relaxed) as u64,
            remaining: self.connections().live.len() as u64,
            finished: self.finished.load(Ordering::Acquire),
            held: self.held(),
        }
    }

    /// Runs the drain to the end. `stop_accepting` closes the client listener.
    pub async fn run(&self, pace: Pace, stop_accepting: &watch::Sender<bool>, metrics: &Metrics) {
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let start = Instant::now();
        let deadline = start + pace.timeout;
        tokio::time::sleep(pace.accept_grace).await;
        let _ = stop_accepting.send(true);
        let order = {
            let mut c = self.connections();
            c.listed = true;
            oldest_first(&c)
        };
        self.total.store(order.len(), Ordering::Relaxed);
        self.pace_step(pace.spread, order.len());
        tracing::info!(connections = order.len(), spread = ?pace.spread, "draining");
        tell_paced(
            order,
            pace.spread,
            || false,
            || {
                self.told.fetch_add(1, Ordering::Relaxed);
                metrics.drained.inc();
            },
        )
        .await;
        self.all_told.store(true, Ordering::Release);
        self.all_told_wake.notify_waiters();
        while !self.connections().live.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(remaining = self.connections().live.len(), took = ?start.elapsed(), "drain finished");
        self.finished.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_jitter_never_outlasts_the_pacing_step() {
        let drain = Drain::default();
        assert_eq!(drain.reconnect_jitter(), MAX_RECONNECT_JITTER, "no pacing yet");
        drain.pace_step(Duration::from_secs(3), 2);
        assert_eq!(drain.reconnect_jitter(), MAX_RECONNECT_JITTER, "a step of 1.5 s is capped");
        drain.pace_step(Duration::from_secs(3), 3_000);
        assert_eq!(drain.reconnect_jitter(), Duration::from_millis(1));
        drain.pace_step(Duration::ZERO, 10);
        assert_eq!(drain.reconnect_jitter(), Duration::from_millis(1), "no spread: reconnect at once");
        drain.pace_step(Duration::from_secs(3), 0);
        assert_eq!(drain.reconnect_jitter(), MAX_RECONNECT_JITTER, "nothing to tell");
    }
}
