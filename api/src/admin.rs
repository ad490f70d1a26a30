//! The JSON the sidecar's admin port answers with, read by the operator and local mode.
//!
//! `GET /status` gives a [`SidecarStatus`]; `GET /drain` and `POST /drain` give a
//! [`DrainStatus`]. One definition, so the sidecar that writes them and the readers cannot
//! drift apart.

use serde::{Deserialize, Serialize};

/// Admin paths.
pub const PATH_LIVE: &str = "/live";
pub const PATH_READY: &str = "/ready";
pub const PATH_METRICS: &str = "/metrics";
pub const PATH_STATUS: &str = "/status";
pub const PATH_DRAIN: &str = "/drain";
/// For a Kubernetes preStop hook (which can only GET): starts the drain and answers once
/// every client has been told to go.
pub const PATH_DRAIN_PRESTOP: &str = "/drain/prestop";
/// `POST /drain?hold=true`: drain, then stay (not ready, listener closed) until SIGTERM
/// instead of exiting, so a Kubernetes container is not restarted into an empty, ready
/// sidecar before the operator removes its pod.
pub const QUERY_HOLD: &str = "hold=true";
/// `POST /shed?count=N&spreadMs=M`: tell N of the oldest connections to reconnect (the
/// drain's lossless handoff) over M milliseconds, staying ready: the operator's rebalancing
/// after a scale-up. Answers a [`ShedReply`]; refused (409) while draining or shedding.
pub const PATH_SHED: &str = "/shed";

/// What `POST /shed` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShedReply {
    /// Connections that will be told to go (fewer than asked when fewer are open).
    pub shedding: u64,
}

/// The query of a `POST /shed`.
pub fn shed_query(count: u64, spread_ms: u64) -> String {
    format!("count={count}&spreadMs={spread_ms}")
}

/// Reads `count` and `spreadMs` from a `/shed` query; `Err` names what is wrong.
pub fn parse_shed_query(query: &str) -> Result<(u64, u64), String> {
    let (mut count, mut spread) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let n: u64 = v.parse().map_err(|_| format!("{k}={v:?} is not a whole number"))?;
        match k {
            "count" => count = Some(n),
            "spreadMs" if n <= 600_000 => spread = Some(n),
            "spreadMs" => return Err("spreadMs is at most 600000".into()),
            _ => return Err(format!("unknown parameter {k:?} (count, spreadMs)")),
        }
    }
    Ok((count.ok_or("count is required")?, spread.unwrap_or(0)))
}

/// A sidecar's state, for autoscaling and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarStatus {
    /// The sidecar's node name (its pod's name in Kubernetes).
    pub node: String,
    /// Whether `/ready` answers 200.
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready_reason: Option<String>,
    /// Open client connections.
    pub connections: u64,
    /// The drain's progress.
    pub drain: DrainStatus,
    /// Connections handed off by rebalancing (`POST /shed`) since the sidecar started.
    #[serde(default)]
    pub shed: u64,
}

/// A drain's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// Whether a drain has started.
    pub draining: bool,
    /// Connections the drain found when it listed them.
    pub total: u64,
    /// Of those, how many were told to reconnect elsewhere.
    pub told: u64,
    /// Connections still open.
    pub remaining: u64,
    /// The drain ran to its end (every connection told, and gone or timed out).
    #[serde(default)]
    pub finished: bool,
    /// The sidecar stays after the drain until it is stopped (`?hold=true`).
    #[serde(default)]
    pub held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reads_back_as_written() {
        let s = SidecarStatus {
            node: "pod-1".into(),
            ready: false,
            not_ready_reason: Some("draining".into()),
            connections: 12,
            drain: DrainStatus { draining: true, total: 12, told: 3, remaining: 12, finished: false, held: true },
            shed: 4,
        };
        let text = serde_json::to_string(&s).expect("json");
        assert!(text.contains("\"notReadyReason\":\"draining\""), "{text}");
        assert_eq!(serde_json::from_str::<SidecarStatus>(&text).expect("parses"), s);
    }

    #[test]
    fn a_shed_query_reads_back_and_bad_ones_say_why() {
        assert_eq!(parse_shed_query(&shed_query(7, 2500)), Ok((7, 2500)));
        assert_eq!(parse_shed_query("count=3"), Ok((3, 0)));
        assert!(parse_shed_query("").expect_err("refused").contains("count is required"));
        assert!(parse_shed_query("count=x").expect_err("refused").contains("not a whole number"));
        assert!(parse_shed_query("count=1&spreadMs=900000").expect_err("refused").contains("at most"));
        assert!(parse_shed_query("count=1&all=1").expect_err("refused").contains("unknown parameter"));
    }
}
