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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
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

    /// The most cores each group used in any one second over the next `seconds`: the peak
    /// of a disruption, which a phase's average hides.
    pub async fn peak(self, seconds: u64) -> Value {
        let mut peaks = vec![0.0f64; self.groups.len()];
        let mut last = self.sample();
        for _ in 0..seconds {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = self.sample();
            for (peak, cores) in peaks.iter_mut().zip(Self::cores_between(&last, &now)) {
                *peak = peak.max(cores);
            }
            last = now;
        }
        Value::Object(self.groups.iter().zip(peaks).map(|((name, _), c)| (name.clone(), json!(round2(c)))).collect())
    }

    /// Cores used since `before` and RSS now, per group.
    pub fn usage(&self, before: &Sample) -> Value {
        let cores = Self::cores_between(before, &self.sample());
        let mut out = serde_json::Map::new();
        for ((name, pids), cores) in self.groups.iter().zip(cores) {
            let rss: u64 = pids.iter().map(|p| rss_bytes(*p)).sum();
            out.insert(name.clone(), json!({"cores": round2(cores), "rss_mib": rss / (1 << 20)}));
        }
        Value::Object(out)
    }
}
