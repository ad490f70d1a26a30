//! `socketfleet-operator`: settings from the environment, then leader election and the
//! controller. Serves `/metrics`, `/healthz` and `/readyz` on `SF_OPERATOR_METRICS_ADDR`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use kube::Client;
use kube::runtime::events::Reporter;
use socketfleet_operator::leader::LeaderElection;
use socketfleet_operator::metrics::Metrics;
use socketfleet_operator::reconcile;
use socketfleet_plumbing::http_server::{respond, serve, text};
use tokio::sync::watch;

const ENV_METRICS_ADDR: &str = "SF_OPERATOR_METRICS_ADDR";
const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";
/// Namespace of the leader Lease: the operator's own (the chart sets it from the pod).
const ENV_NAMESPACE: &str = "SF_OPERATOR_NAMESPACE";
const ENV_IDENTITY: &str = "SF_OPERATOR_IDENTITY";
const ENV_LEASE_NAME: &str = "SF_OPERATOR_LEASE";
const DEFAULT_LEASE_NAME: &str = "socketfleet-operator";
const ENV_LEASE_SECONDS: &str = "SF_OPERATOR_LEASE_SECONDS";
const DEFAULT_LEASE_SECONDS: u64 = 15;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SF_LOG").unwrap_or_else(|_| "info,kube=warn".into()))
        .init();
    let metrics_addr: SocketAddr = env_or(ENV_METRICS_ADDR, DEFAULT_METRICS_ADDR)
        .parse()
        .map_err(|e| anyhow::anyhow!("{ENV_METRICS_ADDR} must be an ip:port address: {e}"))?;
    let lease_seconds: u64 = env_or(ENV_LEASE_SECONDS, &DEFAULT_LEASE_SECONDS.to_string())
        .parse()
        .ok()
        .filter(|s| *s >= 3)
        .ok_or_else(|| anyhow::anyhow!("{ENV_LEASE_SECONDS} must be a whole number of seconds, at least 3"))?;
    let identity = env_or(ENV_IDENTITY, &env_or("HOSTNAME", "socketfleet-operator"));
    let client = Client::try_default().await.map_err(|e| anyhow::anyhow!("no Kubernetes credentials (in-cluster or KUBECONFIG): {e}"))?;
    let namespace = env_or(ENV_NAMESPACE, client.default_namespace());

    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(metrics_addr).await?;
    let m = metrics.clone();
    let (_never, forever) = watch::channel(false);
    tokio::spawn(serve(listener, forever, Duration::from_secs(5), move |req| {
        let m = m.clone();
        async move {
            match req.uri().path() {
                "/metrics" => respond(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", m.render()),
                "/healthz" | "/readyz" => text(StatusCode::OK, "ok\n"),
                _ => text(StatusCode::NOT_FOUND, "not found: /metrics, /healthz, /readyz\n"),
            }
        }
    }));
    tracing::info!(%metrics_addr, %identity, %namespace, "operator started");

    let election = LeaderElection::new(
        client.clone(),
        &namespace,
        &env_or(ENV_LEASE_NAME, DEFAULT_LEASE_NAME),
        &identity,
        Duration::from_secs(lease_seconds),
    );
    tokio::select! {
        _ = election.acquire(&metrics) => {}
        _ = signal() => return Ok(()),
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    };
    let reporter = Reporter { controller: "socketfleet-operator".into(), instance: Some(identity.clone()) };
    let controller = tokio::spawn(reconcile::run(client, metrics.clone(), reporter, stopped));
    let lost = tokio::select! {
        _ = election.hold(&metrics) => true,
        _ = signal() => false,
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
    if lost {
        // Another replica may be reconciling now: stop, and restart as a follower.
        anyhow::bail!("lost the leader lease");
    }
    election.release(&metrics).await;
    tracing::info!("stopped");
    Ok(())
}
