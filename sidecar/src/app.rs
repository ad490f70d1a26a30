//! Wires the parts together and runs them until shutdown: each listener gets the narrow
//! handle it needs (`Edge` for clients, `Admin`, `AppApi`), and nothing in `edge/` imports
//! this module.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::backend::router::Router;
use crate::backend::slot::SLOTS;
use crate::backend::subscriber::Subscriber;
use crate::backend::topology::Topology;
use crate::delivery::drain::{Drain, Pace};
use crate::delivery::hub::Hub;
use crate::delivery::session::{SessionSettings, Sessions};
use crate::edge::admin::{self, Admin, Health};
use crate::edge::app_api::{self, AppApi};
use crate::edge::auth::Authenticator;
use crate::edge::keepalive;
use crate::edge::resume_token::ResumeKeys;
use crate::edge::server::{self, Edge};
use crate::metrics::Metrics;
use crate::store::channels::{ChannelSettings, ChannelStore};
use crate::store::presence::Presence;
use socketfleet_api::settings::SidecarSettings as Config;
use socketfleet_plumbing::http_server as http_util;

/// The three listeners, bound by the caller (tests bind `127.0.0.1:0`).
pub struct Listeners {
    pub ws: TcpListener,
    pub admin: TcpListener,
    pub app_api: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        Ok(Listeners {
            ws: http_util::listen(config.ws_addr)?,
            admin: http_util::listen(config.admin_addr)?,
            app_api: http_util::listen(config.app_api_addr)?,
        })
    }
}

/// How long the admin listener outlives a finished drain.
const PRESTOP_ANSWER_GRACE: Duration = Duration::from_millis(200);

/// Runs the sidecar until `stop` resolves or `POST /drain` is called, then drains (see
/// `drain.rs`) and returns. `auth` is built from `config.auth` by the caller, which reports
/// an unreadable key as the configuration error it is.
pub async fn run(config: Config, auth: Authenticator, listeners: Listeners, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let reconnects = metrics.clone();
    let router = Arc::new(Router::new(
        Topology::new(&config.redis),
        config.redis.retry_budget,
        Box::new(move || {
            reconnects.redis_reconnects.inc();
        }),
    ));
    let store = Arc::new(ChannelStore::new(
        router.clone(),
        ChannelSettings {
            history_size: config.history_size,
            history_ttl_ms: config.history_ttl.as_millis() as u64,
            durable_publish: config.redis.durable_publish,
            // WAIT must give up before the command's response timeout does: then a publish
            // no replica confirmed is answered as that (`not_durable`), the connection is
            // kept, and it is never mistaken for an unanswered one (`unconfirmed`).
            wait_timeout_ms: (config.redis.timeout / 2).as_millis().max(1) as u64,
        },
    ));
    let hub = Hub::new(store.clone(), metrics.clone());
    hub.attach(Subscriber::start(router.clone(), hub.clone(), config.redis.topology_poll));
    let presence = Presence::new(store.clone(), config.presence_ttl);
    let resume_keys = resume_keys(&config);
    let sessions = Sessions::new(
        router.clone(),
        hub.clone(),
        metrics.clone(),
        SessionSettings {
            ttl: config.resume_window,
            interval: config.session_checkpoint,
            position_interval: config.position_checkpoint(),
            state_max: config.session_state_max,
        },
        config.node_name.as_str(),
    );
    let (shutdown_tx, shutdown) = watch::channel(false);
    let health = Arc::new(Health::default());
    let drain = Arc::new(Drain::default());
    let admin = Arc::new(Admin {
        node: config.node_name.as_str().to_string(),
        drain_timeout: config.drain_timeout,
        health: health.clone(),
        drain: drain.clone(),
        metrics: metrics.clone(),
    });
    let api = Arc::new(AppApi {
        store: store.clone(),
        sessions: sessions.clone(),
        metrics: metrics.clone(),
        session_state_max: config.session_state_max,
        max_frame_bytes: config.max_frame_bytes,
    });
    let health_poll = config.redis.topology_poll.min(Duration::from_secs(2));
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    // Direct writes (frames written by the task that offers them, see `send_queue.rs`) on
    // one worker only: there nothing else can poll a connection's socket while the fan-out
    // writes to it, and the writer's wake-up per delivery is saved (about a fifth more
    // deliveries per core). With more workers one publication's writes spread over them
    // through the writer tasks instead.
    let direct_writes = workers == 1;
    tracing::info!(workers, direct_writes, "runtime");
    let edge = Arc::new(Edge {
        conn_limit: Arc::new(Semaphore::new(config.max_connections)),
        config,
        hub,
        store,
        presence: presence.clone(),
        auth,
        metrics: metrics.clone(),
        next_conn_id: AtomicU64::new(1),
        drain: drain.clone(),
        resume_keys,
        sessions: sessions.clone(),
        direct_writes,
        shutdown: shutdown.clone(),
    });

    let background = [
        tokio::spawn(presence.refresh_forever()),
        tokio::spawn(sessions.checkpoint_forever()),
        tokio::spawn(check_redis_forever(health, router, health_poll)),
        tokio::spawn(keepalive::ping_forever(drain.clone(), edge.config.ping_interval)),
    ];
    let config = &edge.config;
    let header_timeout = config.handshake_timeout;
    let e = edge.clone();
    let ws = tokio::spawn(http_util::serve(listeners.ws, shutdown.clone(), header_timeout, move |req| server::handle(req, e.clone())));
    let admin = tokio::spawn(http_util::serve(listeners.admin, watch::channel(false).1, header_timeout, move |req| {
        admin::handle(req, admin.clone())
    }));
    let api = tokio::spawn(http_util::serve(listeners.app_api, shutdown, header_timeout, move |req| app_api::handle(req, api.clone())));
    tracing::info!(ws = %config.ws_addr, admin = %config.admin_addr, node = %config.node_name.as_str(), "sidecar started");

    tokio::pin!(stop);
    let signalled = tokio::select! {
        _ = &mut stop => { tracing::info!("signal received: draining"); true }
        _ = drain.requested() => { tracing::info!("drain requested: draining"); false }
    };
    let pace = Pace { accept_grace: config.drain_accept_grace, spread: config.drain_spread, timeout: config.drain_timeout };
    drain.run(pace, &shutdown_tx, &metrics).await;
    if !signalled && drain.held() {
        // The operator removes this pod itself; exiting now would let Kubernetes restart the
        // container into an empty, ready sidecar that takes new clients.
        tracing::info!("drained; staying until stopped");
        stop.await;
    }
    // A preStop hook waiting on `/drain/prestop` gets its answer before the listener goes;
    // without one (SIGTERM alone, local mode) nothing is waiting and the exit is not held.
    if drain.prestop_asked() {
        tokio::time::sleep(PRESTOP_ANSWER_GRACE).await;
    }
    for task in background.iter().chain([&ws, &admin, &api]) {
        task.abort();
    }
    tracing::info!(remaining = metrics.connections.get(), "stopped");
    Ok(())
}

fn resume_keys(config: &Config) -> ResumeKeys {
    let bytes = |k: &Option<socketfleet_api::settings::Secret>| k.as_ref().and_then(|s| s.value()).map(|v| v.as_bytes().to_vec());
    let current = bytes(&config.resume_key).unwrap_or_else(|| {
        tracing::warn!("{} is not set: resume tokens will only work on this pod", socketfleet_api::settings::ENV_RESUME_KEY);
        (0..4).flat_map(|_| rand::random::<u64>().to_le_bytes()).collect()
    });
    ResumeKeys::new(current, bytes(&config.resume_key_previous))
}

/// Keeps `/ready` truthful, as a latch. Until it first holds, ready means what a client's
/// first publish and subscribe need: every slot has a primary, and every primary answers
/// PING over the connection commands use (opened and authenticated now, not within a
/// client's first command's budget), in every mode (standalone and Sentinel included).
/// After that, Redis must still answer (the topology resolves, some primary answers PING):
/// a primary in the middle of a failover must not take every pod out of the Service.
async fn check_redis_forever(health: Arc<Health>, router: Arc<Router>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut latched = false;
    loop {
        tick.tick().await;
        let ok = match router.refresh().await {
            Ok(map) => {
                let primaries = map.primaries();
                let mut answered = 0;
                for addr in &primaries {
                    match router.ping(addr).await {
                        Ok(()) => answered += 1,
                        Err(e) => tracing::warn!(%addr, error = %e, "Redis primary does not answer PING"),
                    }
                }
                if latched { answered > 0 } else { answered > 0 && answered == primaries.len() && map.covered() == u32::from(SLOTS) }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Redis health check failed");
                false
            }
        };
        latched |= ok;
        health.set_redis_ok(ok);
    }
}
