//! Sentinel mode, supervised from the operator over the Sentinel protocol (with the
//! fleet's password: the Sentinels ask for it). The Sentinels decide which pod is the
//! primary; a pass never competes with that decision. It repairs only what Sentinels do
//! not repair by themselves, and reports:
//!
//! - a Sentinel that lost the master (its config reset by hand, or every Sentinel restarted
//!   at once) is told to `MONITOR` the primary its peers name, with their settings and the
//!   `auth-pass`; when no Sentinel names one, the single pod that says it is a primary;
//! - a Sentinel that remembers more replicas or Sentinels than there are pods (a scale-in,
//!   a replaced Sentinel) is `RESET`, one per pass, never during a failover and only while
//!   two others agree on the primary (so a failover quorum stays while it re-discovers);
//! - a primary on a pod a scale-in removes is failed over first: the pods going away get
//!   `replica-priority 0` so that a staying replica is promoted, and the caller keeps the
//!   StatefulSet's pods until the primary stays;
//! - the report: the primary's pod, its replicas in sync, how many Sentinels answer and
//!   how many of them name that primary.

use std::collections::BTreeMap;
use std::fmt;

use redis::aio::MultiplexedConnection;

use crate::children::redis::{SENTINEL_QUORUM as QUORUM, SENTINELS};
use crate::redis_cluster::{Access, Member};

/// A Redis pod of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisPod {
    pub member: Member,
    /// The name the Sentinels know it by (its DNS name; an IP in tests).
    pub host: String,
    pub port: u16,
}

/// What a pass changed; each becomes a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A Sentinel that had lost the master watches it again.
    Monitor { sentinel: String, primary: String },
    /// A Sentinel that remembered pods that are gone forgot them and re-discovers.
    Reset { sentinel: String, replicas: usize, sentinels: usize },
    /// The primary is on a pod a scale-in removes: a failover was asked for.
    Failover { from: String },
}

impl Action {
    pub fn reason(&self) -> &'static str {
        match self {
            Action::Monitor { .. } => "SentinelMonitorRestored",
            Action::Reset { .. } => "SentinelReset",
            Action::Failover { .. } => "SentinelFailoverRequested",
        }
    }

    pub fn is_warning(&self) -> bool {
        matches!(self, Action::Monitor { .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Monitor { sentinel, primary } => write!(f, "Sentinel {sentinel} had lost the primary; it watches {primary} again"),
            Action::Reset { sentinel, replicas, sentinels } => write!(
                f,
                "Sentinel {sentinel} remembered {replicas} replicas and {sentinels} other Sentinels, more than exist; reset so it forgets the pods that are gone"
            ),
            Action::Failover { from } => write!(f, "the primary {from} is on a pod the scale-in removes; Sentinel failover asked for"),
        }
    }
}

/// What a pass saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub actions: Vec<Action>,
    /// The pod the Sentinels name as primary (the most of those that answered).
    pub primary: Option<String>,
    /// Replicas of the primary whose link is up (`state=online`).
    pub replicas_in_sync: usize,
    /// Sentinels that answered.
    pub sentinels: usize,
    /// Of those, how many name `primary`.
    pub agreeing: usize,
    /// The primary is on a pod beyond the spec's count: the StatefulSet must keep it.
    pub leaving_primary: bool,
}

/// One Sentinel's view of the master (`SENTINEL MASTER`), None when it does not monitor it.
struct SentinelView {
    member: Member,
    conn: MultiplexedConnection,
    master: Option<BTreeMap<String, String>>,
}

impl SentinelView {
    fn field(&self, name: &str) -> Option<&str> {
        self.master.as_ref()?.get(name).map(String::as_str)
    }

    fn names(&self) -> Option<(String, String)> {
        Some((self.field("ip")?.to_string(), self.field("port")?.to_string()))
    }

    fn count(&self, name: &str) -> usize {
        self.field(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await
    }
}

/// One pass. `sentinels` and `redis` are the pods that exist; `spec_pods` the Redis pods the
/// spec asks for (pods beyond it are leaving); `master` the name the Sentinels monitor.
pub async fn supervise(sentinels: &[Member], redis: &[RedisPod], spec_pods: usize, master: &str, access: &Access) -> Report {
    let mut report = Report::default();
    let mut views = Vec::new();
    for s in sentinels {
        if let Some(v) = view(s, master, access).await {
            views.push(v);
        }
    }
    report.sentinels = views.len();
    // The primary most Sentinels name.
    let mut votes: BTreeMap<(String, String), usize> = BTreeMap::new();
    for v in &views {
        if let Some(n) = v.names() {
            *votes.entry(n).or_default() += 1;
        }
    }
    let named = votes.iter().max_by_key(|(_, n)| **n).map(|(k, n)| (k.clone(), *n));
    let failing_over = views.iter().any(|v| v.field("flags").is_some_and(|f| f.contains("failover_in_progress")));
    let primary = match &named {
        Some(((host, port), n)) => {
            report.agreeing = *n;
            redis.iter().find(|p| names_pod(p, host, port)).cloned()
        }
        None => lone_primary(redis, access).await,
    };
    if let Some(p) = &primary {
        report.primary = Some(p.member.name.clone());
        report.replicas_in_sync = replicas_in_sync(p, access).await;
        report.leaving_primary = p.member.ordinal >= spec_pods;
    }
    // Repairs wait while the Sentinels fail over.
    if failing_over {
        return report;
    }
    // Sentinels that lost the master watch the primary again, with the settings of one
    // that kept it.
    if let Some(p) = &primary {
        let settings = views.iter().find(|v| v.master.is_some());
        for v in views.iter().filter(|v| v.master.is_none()) {
            match monitor(v, master, p, settings, access).await {
                Ok(()) => report.actions.push(Action::Monitor { sentinel: v.member.name.clone(), primary: p.member.name.clone() }),
                Err(e) => tracing::warn!(sentinel = %v.member.name, error = %e, "could not restore the Sentinel's master"),
            }
        }
    }
    // One stale Sentinel reset per pass, while a quorum of the others agrees on the
    // primary. Pods being replaced still count: the spec's number is what should exist.
    let (pods, peers) = (redis.len().max(spec_pods), sentinels.len().max(SENTINELS));
    let stale = views.iter().find(|v| v.count("num-slaves") + 1 > pods || v.count("num-other-sentinels") + 1 > peers);
    if let Some(v) = stale {
        let names_primary = v.names().is_some() && v.names() == named.as_ref().map(|(n, _)| n.clone());
        let others = report.agreeing - usize::from(names_primary);
        let (replicas, known) = (v.count("num-slaves"), v.count("num-other-sentinels"));
        if others >= QUORUM && v.run::<i64>(redis::cmd("SENTINEL").arg("RESET").arg(master)).await.is_ok() {
            report.actions.push(Action::Reset { sentinel: v.member.name.clone(), replicas, sentinels: known });
        }
    }
    // A primary on a leaving pod: staying replicas are preferred, then a failover.
    if let Some(p) = primary.as_ref().filter(|_| report.leaving_primary) {
        for r in redis {
            let priority = if r.member.ordinal >= spec_pods { "0" } else { "100" };
            let _ = redis_query::<()>(r, access, redis::cmd("CONFIG").arg("SET").arg("replica-priority").arg(priority)).await;
        }
        let asked = views.iter().find(|v| v.master.is_some());
        if let Some(v) = asked
            && v.run::<()>(redis::cmd("SENTINEL").arg("FAILOVER").arg(master)).await.is_ok()
        {
            report.actions.push(Action::Failover { from: p.member.name.clone() });
        }
    }
    report
}

/// Whether the Sentinels' `host`/`port` for the master is this pod: its address, or its DNS
/// name (whose first label is the pod's name).
fn names_pod(pod: &RedisPod, host: &str, port: &str) -> bool {
    let same_port = port == pod.port.to_string();
    same_port
        && (host == pod.host || host.split('.').next() == Some(pod.member.name.as_str()) || pod.member.addr == format!("{host}:{port}"))
}

async fn view(s: &Member, master: &str, access: &Access) -> Option<SentinelView> {
    let conn = socketfleet_plumbing::redis_conn::connect(&s.addr, access.password.as_deref(), access.timeout).await.ok()?;
    let mut c = conn.clone();
    let master = match redis::cmd("SENTINEL").arg("MASTER").arg(master).query_async::<Vec<String>>(&mut c).await {
        Ok(flat) => Some(flat.chunks(2).filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone()))).collect()),
        // "No such master with that name": it lost it.
        Err(e) if e.to_string().contains("No such master") => None,
        Err(_) => return None,
    };
    Some(SentinelView { member: s.clone(), conn, master })
}

/// When no Sentinel names a primary: the one pod that says it is a primary, if exactly one
/// does (anything else is for the Sentinels' own election, not the operator's).
async fn lone_primary(redis: &[RedisPod], access: &Access) -> Option<RedisPod> {
    let mut primaries = Vec::new();
    for p in redis {
        if redis_query::<String>(p, access, redis::cmd("INFO").arg("replication")).await.is_ok_and(|i| i.contains("role:master")) {
            primaries.push(p.clone());
        }
    }
    (primaries.len() == 1).then(|| primaries.remove(0))
}

async fn replicas_in_sync(primary: &RedisPod, access: &Access) -> usize {
    let info = redis_query::<String>(primary, access, redis::cmd("INFO").arg("replication")).await.unwrap_or_default();
    info.lines().filter(|l| l.starts_with("slave") && l.contains("state=online")).count()
}

async fn monitor(v: &SentinelView, master: &str, p: &RedisPod, like: Option<&SentinelView>, access: &Access) -> redis::RedisResult<()> {
    let quorum = like.and_then(|l| l.field("quorum")).map_or(QUORUM.to_string(), str::to_string);
    v.run::<()>(redis::cmd("SENTINEL").arg("MONITOR").arg(master).arg(&p.host).arg(p.port).arg(&quorum)).await?;
    let mut set = redis::cmd("SENTINEL");
    set.arg("SET").arg(master);
    if let Some(pw) = &access.password {
        set.arg("auth-pass").arg(pw);
    }
    for (key, default) in crate::children::redis::SENTINEL_SETTINGS {
        set.arg(key).arg(like.and_then(|l| l.field(key)).unwrap_or(default));
    }
    v.run::<()>(&set).await
}

async fn redis_query<T: redis::FromRedisValue>(pod: &RedisPod, access: &Access, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let mut conn = socketfleet_plumbing::redis_conn::connect(&pod.member.addr, access.password.as_deref(), access.timeout).await?;
    cmd.query_async(&mut conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, host: &str) -> RedisPod {
        RedisPod { member: Member { name: name.into(), addr: "10.0.0.7:6379".into(), ordinal: 1 }, host: host.into(), port: 6379 }
    }

    #[test]
    fn the_sentinels_name_a_pod_by_its_dns_name_or_its_address() {
        let p = pod("chat-redis-1", "chat-redis-1.chat-redis-headless.demo.svc.cluster.local");
        assert!(names_pod(&p, "chat-redis-1.chat-redis-headless.demo.svc.cluster.local", "6379"));
        assert!(names_pod(&p, "chat-redis-1.other", "6379"), "the first label is the pod's name");
        assert!(names_pod(&p, "10.0.0.7", "6379"));
        assert!(!names_pod(&p, "chat-redis-10.chat-redis-headless", "6379"));
        assert!(!names_pod(&p, "chat-redis-1.chat-redis-headless", "6380"));
    }
}
