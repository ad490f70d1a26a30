//! The sidecar's Prometheus registry (prefix `socketfleet_sidecar`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub channels: Gauge,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub slow_consumer_disconnects: Counter,
    pub protocol_errors: Counter,
    pub redis_reconnects: Counter,
    pub resubscribes: Counter,
    pub drained: Counter,
    pub shed: Counter,
    pub session_checkpoints: Counter,
    pub sessions_resumed: Counter,
    pub recoveries: Family<OutcomeLabel, Counter>,
    pub publish_to_deliver: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::with_prefix("socketfleet_sidecar");
        let m = Metrics {
            connections: Gauge::default(),
            connections_total: Counter::default(),
            channels: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            slow_consumer_disconnects: Counter::default(),
            protocol_errors: Counter::default(),
            redis_reconnects: Counter::default(),
            resubscribes: Counter::default(),
            drained: Counter::default(),
            shed: Counter::default(),
            session_checkpoints: Counter::default(),
            sessions_resumed: Counter::default(),
            recoveries: Family::default(),
            publish_to_deliver: Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            registry: Registry::default(),
        };
        let r = &mut root;
        r.register("connections", "Open WebSocket connections", m.connections.clone());
        r.register("connections", "WebSocket connections accepted", m.connections_total.clone());
        r.register("channels", "Channels this pod is subscribed to in Redis", m.channels.clone());
        r.register("messages_in", "Publications accepted from clients and the app", m.messages_in.clone());
        r.register("messages_out", "Message frames queued to clients", m.messages_out.clone());
        r.register(
            "slow_consumer_disconnects",
            "Clients disconnected because their send queue was full",
            m.slow_consumer_disconnects.clone(),
        );
        r.register("protocol_errors", "Client frames answered with an error", m.protocol_errors.clone());
        r.register("redis_reconnects", "Redis node connections dropped and reopened", m.redis_reconnects.clone());
        r.register("resubscribes", "Channels subscribed again after a failover, migration or disconnect", m.resubscribes.clone());
        r.register("drained", "Connections told to reconnect elsewhere by a drain", m.drained.clone());
        r.register("shed", "Connections told to reconnect elsewhere by rebalancing (POST /shed)", m.shed.clone());
        r.register("session_checkpoints", "Session documents written to Redis", m.session_checkpoints.clone());
        r.register("sessions_resumed", "Connections that resumed a session from a resume token", m.sessions_resumed.clone());
        r.register(
            "recoveries",
            "Subscriptions with `since`, by outcome (recovered, gap, ahead: past the stream's end, served from the end)",
            m.recoveries.clone(),
        );
        r.register(
            "publish_to_deliver_seconds",
            "Time from the publish script to this pod receiving the message",
            m.publish_to_deliver.clone(),
        );
        Metrics { registry: root, ..m }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
