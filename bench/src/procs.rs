//! CPU and memory of the processes under test, read from `/proc`: CPU as cores used over
//! a phase (user + system ticks) and the busiest second of a phase, memory as resident set
//! size.

use serde_json::{Value, json};

#[derive(Default, Clone)]
pub struct Procs {
    /// (group name, pids): e.g. "servers" and "redis".
    pub groups: Vec<(String, Vec<u32>)>,
}

pub struct Sample {
    at: std::time::Instant,
    ticks: Vec<u64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

fn ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

impl Procs {
    pub fn parse(spec: &str) -> Self {
        // "servers=1,2,3;redis=4,5"
        let groups = spec
            .split(';')
            .filter_map(|g| g.split_once('='))
            .map(|(name, pids)| (name.to_string(), pids.split(',').filter_map(|p| p.parse().ok()).collect()))
            .collect();
        Self { groups }
    }

    pub fn sample(&self) -> Sample {
        Sample { at: std::time::Instant::now(), ticks: self.groups.iter().map(|(_, pids)| pids.iter().map(|p| ticks(*p)).sum()).collect() }
    }

    /// Cores used per group between two samples.
    fn cores_between(earlier: &Sample, later: &Sample) -> Vec<f64> {
        let secs = later.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        earlier.ticks.iter().zip(&later.ticks).map(|(t0, t1)| t1.saturating_sub(*t0) as f64 / USER_HZ / secs).collect()
    }

    /// The most cores each group used in any one second until `stop` is set (at most
    /// `limit` seconds): the peak of a disruption, which a phase's average hides.
    pub async fn peak(self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>, limit: u64) -> Value {
        let mut peaks = vec![0.0f64; self.groups.len()];
        let mut last = self.sample();
        for _ in 0..limit {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = self.sample();
            for (peak, cores) in peaks.iter_mut().zip(Self::cores_between(&last, &now)) {
                *peak = peak.max(cores);
            }
            last = now;
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        let rounded = |c: f64| (c * 100.0).round() / 100.0;
        Value::Object(self.groups.iter().zip(peaks).map(|((name, _), c)| (name.clone(), json!(rounded(c)))).collect())
    }

    /// Cores used since `before` and RSS now, per group.
    pub fn usage(&self, before: &Sample) -> Value {
        let secs = before.at.elapsed().as_secs_f64();
        let mut out = serde_json::Map::new();
        for ((name, pids), t0) in self.groups.iter().zip(&before.ticks) {
            let t1: u64 = pids.iter().map(|p| ticks(*p)).sum();
            let rss: u64 = pids.iter().map(|p| rss_bytes(*p)).sum();
            out.insert(
                name.clone(),
                json!({"cores": ((t1.saturating_sub(*t0)) as f64 / USER_HZ / secs * 100.0).round() / 100.0, "rss_mib": rss / (1 << 20)}),
            );
        }
        Value::Object(out)
    }
}
