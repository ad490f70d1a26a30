//! What the generator counts while it runs: publish-to-deliver latency per phase (HDR
//! histograms, sharded by client so 10,000 clients do not contend on one lock), delivery,
//! publish and connection counters, and the moments the recovery figures are made of.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

const SHARDS: usize = 8;
/// A delivery this late (publish to deliver) counts as held up by a failure, for the
/// recovery time of the rolling and failover scenarios.
const LATE_US: u64 = 500_000;

pub struct Stats {
    epoch: Instant,
    phase: AtomicUsize,
    latency: Vec<Mutex<Vec<Histogram<u64>>>>,
    reconnect_ms: Mutex<Histogram<u64>>,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub publish_errors: AtomicU64,
    pub unconfirmed: AtomicU64,
    /// Publications sent again with their publish id after their outcome was unknown.
    pub retried: AtomicU64,
    pub connect_errors: AtomicU64,
    /// Sessions resumed with a token, and tokens refused (a fresh session instead).
    pub resumed: AtomicU64,
    pub resume_rejected: AtomicU64,
    pub disconnects: AtomicU64,
    pub connected: AtomicUsize,
    clients: usize,
    last_late_us: AtomicU64,
    last_publish_error_us: AtomicU64,
    all_connected_us: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

impl Stats {
    pub fn new(clients: usize) -> Self {
        Self {
            epoch: Instant::now(),
            phase: AtomicUsize::new(0),
            latency: (0..SHARDS).map(|_| Mutex::new(vec![histogram()])).collect(),
            reconnect_ms: Mutex::new(histogram()),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            published: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            unconfirmed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            resume_rejected: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            connected: AtomicUsize::new(0),
            clients,
            last_late_us: AtomicU64::new(0),
            last_publish_error_us: AtomicU64::new(0),
            all_connected_us: AtomicU64::new(0),
        }
    }

    /// Counts a resume token's outcome: the session resumed, or was refused.
    pub fn resume(&self, resumed: bool) {
        let counter = if resumed { &self.resumed } else { &self.resume_rejected };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Microseconds since the generator started: the clock every payload is stamped with.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn start_phase(&self) -> usize {
        for shard in &self.latency {
            shard.lock().expect("stats lock").push(histogram());
        }
        self.phase.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn delivered(&self, client: usize, sent_us: u64) {
        let now = self.now_us();
        let latency = now.saturating_sub(sent_us).max(1);
        let phase = self.phase.load(Ordering::Relaxed);
        if let Some(h) = self.latency[client % SHARDS].lock().expect("stats lock").get_mut(phase) {
            h.saturating_record(latency);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if latency > LATE_US {
            self.last_late_us.fetch_max(now, Ordering::Relaxed);
        }
    }

    pub fn publish_failed(&self) {
        self.publish_errors.fetch_add(1, Ordering::Relaxed);
        self.last_publish_error_us.fetch_max(self.now_us(), Ordering::Relaxed);
    }

    pub fn became_ready(&self, down_since_us: Option<u64>) {
        let now = self.now_us();
        if let Some(since) = down_since_us {
            self.reconnect_ms.lock().expect("stats lock").saturating_record((now - since) / 1000 + 1);
        }
        if self.connected.fetch_add(1, Ordering::SeqCst) + 1 == self.clients && down_since_us.is_some() {
            self.all_connected_us.fetch_max(now, Ordering::SeqCst);
        }
    }

    pub fn went_down(&self) {
        self.connected.fetch_sub(1, Ordering::SeqCst);
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Latency percentiles of one phase, in milliseconds.
    pub fn latency(&self, phase: usize) -> Value {
        let mut all = histogram();
        for shard in &self.latency {
            if let Some(h) = shard.lock().expect("stats lock").get(phase) {
                all.add(h).expect("same bounds");
            }
        }
        let ms = |q: f64| (all.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0;
        json!({"samples": all.len(), "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": (all.max() as f64 / 1000.0).round()})
    }

    pub fn p99_ms(&self, phase: usize) -> f64 {
        self.latency(phase)["p99_ms"].as_f64().unwrap_or(f64::MAX)
    }

    /// Seconds from `event_us` to the last trace of the disruption: the last late delivery,
    /// the last refused publish, the moment every client was connected again.
    pub fn recovery(&self, event_us: u64) -> Value {
        let after = |t: u64| if t > event_us { Some(((t - event_us) as f64 / 1e4).round() / 100.0) } else { None };
        let late = after(self.last_late_us.load(Ordering::SeqCst));
        let refused = after(self.last_publish_error_us.load(Ordering::SeqCst));
        let connected = after(self.all_connected_us.load(Ordering::SeqCst));
        let recovered = [late, refused, connected].into_iter().flatten().fold(0.0, f64::max);
        let r = self.reconnect_ms.lock().expect("stats lock");
        json!({
            "recovered_after_s": recovered, "last_late_delivery_s": late, "last_refused_publish_s": refused,
            "all_connected_again_s": connected,
            "reconnects": r.len(), "reconnect_p50_ms": r.value_at_quantile(0.5), "reconnect_max_ms": r.max(),
        })
    }
}

/// Which sequence numbers arrived (or were acknowledged): a growable bit set.
#[derive(Default, Debug)]
pub struct Seqs(Vec<u64>);

impl Seqs {
    /// Sets `seq`; false when it was already set.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }

    /// How many of `self` are not in `other`.
    pub fn missing_from(&self, other: &Seqs) -> u64 {
        self.0.iter().enumerate().map(|(i, w)| (w & !other.0.get(i).copied().unwrap_or(0)).count_ones() as u64).sum()
    }

    /// The seqs set here and not in `other`, at most `most`.
    pub fn missing_list(&self, other: &Seqs, most: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.0.iter().enumerate() {
            let mut left = w & !other.0.get(i).copied().unwrap_or(0);
            while left != 0 && out.len() < most {
                out.push(i as u64 * 64 + left.trailing_zeros() as u64);
                left &= left - 1;
            }
        }
        out
    }

    /// The highest seq set.
    pub fn last(&self) -> Option<u64> {
        self.0.iter().enumerate().rev().find(|(_, w)| **w != 0).map(|(i, w)| i as u64 * 64 + 63 - w.leading_zeros() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_count_duplicates_and_missing() {
        let (mut acked, mut got) = (Seqs::default(), Seqs::default());
        for s in [1, 2, 3, 64, 200] {
            acked.insert(s);
        }
        assert!(got.insert(2));
        assert_eq!(acked.missing_list(&got, 10), [1, 3, 64, 200]);
        assert_eq!(acked.last(), Some(200));
        assert!(!got.insert(2));
        got.insert(200);
        assert_eq!(acked.missing_from(&got), 3);
    }

    #[test]
    fn phases_keep_latency_apart() {
        let stats = Stats::new(1);
        let p = stats.start_phase();
        std::thread::sleep(std::time::Duration::from_millis(3));
        stats.delivered(0, stats.now_us().saturating_sub(2_000));
        assert!(stats.latency(p)["p50_ms"].as_f64().unwrap_or(0.0) >= 2.0);
        assert_eq!(stats.latency(p + 1)["samples"], 0);
    }
}
