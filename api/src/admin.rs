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
        };
        let text = serde_json::to_string(&s).expect("json");
        assert!(text.contains("\"notReadyReason\":\"draining\""), "{text}");
        assert_eq!(serde_json::from_str::<SidecarStatus>(&text).expect("parses"), s);
    }
}
