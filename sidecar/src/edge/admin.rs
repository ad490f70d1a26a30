//! The admin listener: `/live`, `/ready`, `/metrics`, `/status` (connections, readiness and
//! drain as JSON, for the operator and local mode), and `/drain` (GET: progress as JSON;
//! POST: start the drain; `?hold=true`: and stay afterwards until stopped, for the operator's
//! autoscaler, which removes the pod itself). `GET /drain/prestop` is for a Kubernetes preStop hook (which can
//! only GET): it starts the drain and answers once every client has been told to go.
//! `POST /shed?count=N&spreadMs=M` hands N connections off to other pods (rebalancing). The
//! paths and JSON shapes are `socketfleet_api::admin`'s.
//!
//! Ready means: Redis answered the last topology check and the sidecar is not draining.
//! Kubernetes removes a pod that is not ready from the Service's endpoints, which is the
//! first step of a drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use hyper::body::Incoming;

use socketfleet_api::admin::{
    PATH_DRAIN, PATH_DRAIN_PRESTOP, PATH_LIVE, PATH_METRICS, PATH_READY, PATH_SHED, PATH_STATUS, QUERY_HOLD, ShedReply, SidecarStatus,
    parse_shed_query,
};

use crate::delivery::drain::Drain;
use crate::metrics::Metrics;
use socketfleet_plumbing::http_server::{HttpResponse, json, respond, text};

/// Readiness input from the Redis health check (draining is `Drain`'s own state).
#[derive(Default)]
pub struct Health {
    redis_ok: AtomicBool,
}

impl Health {
    pub fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Ordering::Relaxed);
    }

    /// `Err(reason)` when not ready.
    pub fn ready(&self, draining: bool) -> Result<(), &'static str> {
        if draining {
            Err("draining")
        } else if !self.redis_ok.load(Ordering::Relaxed) {
            Err("redis unreachable")
        } else {
            Ok(())
        }
    }
}

/// What the admin listener reads and starts.
pub struct Admin {
    /// This pod's name, as `/status` reports it.
    pub node: String,
    /// `/drain/prestop` answers within this (plus a second).
    pub drain_timeout: Duration,
    pub health: Arc<Health>,
    pub drain: Arc<Drain>,
    pub metrics: Arc<Metrics>,
}

fn status(app: &Admin) -> SidecarStatus {
    let ready = app.health.ready(app.drain.started());
    SidecarStatus {
        node: app.node.clone(),
        ready: ready.is_ok(),
        not_ready_reason: ready.err().map(str::to_string),
        connections: app.metrics.connections.get().max(0) as u64,
        drain: app.drain.status(),
        shed: app.metrics.shed.get(),
    }
}

pub async fn handle(req: hyper::Request<Incoming>, app: Arc<Admin>) -> HttpResponse {
    match req.uri().path() {
        PATH_LIVE => text(StatusCode::OK, "ok\n"),
        PATH_READY => match app.health.ready(app.drain.started()) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
        PATH_STATUS => json(StatusCode::OK, &status(&app)),
        PATH_DRAIN if req.method() == http::Method::POST => {
            if req.uri().query() == Some(QUERY_HOLD) {
                app.drain.request_held();
            } else {
                app.drain.request();
            }
            json(StatusCode::ACCEPTED, &app.drain.status())
        }
        PATH_DRAIN => json(StatusCode::OK, &app.drain.status()),
        PATH_SHED if req.method() == http::Method::POST => match parse_shed_query(req.uri().query().unwrap_or("")) {
            Err(why) => text(StatusCode::BAD_REQUEST, format!("{why}\n")),
            Ok((count, spread_ms)) => match app.drain.shed(count as usize, Duration::from_millis(spread_ms), app.metrics.clone()) {
                Some(n) => json(StatusCode::OK, &ShedReply { shedding: n as u64 }),
                None => text(StatusCode::CONFLICT, "draining, or a shed is under way\n"),
            },
        },
        PATH_DRAIN_PRESTOP => {
            app.drain.request_for_prestop();
            let limit = app.drain_timeout + Duration::from_secs(1);
            let status = if app.drain.all_told(limit).await { StatusCode::OK } else { StatusCode::GATEWAY_TIMEOUT };
            json(status, &app.drain.status())
        }
        PATH_METRICS => respond(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", app.metrics.render()),
        _ => text(StatusCode::NOT_FOUND, "not found: /live, /ready, /metrics, /status, /drain, /drain/prestop, /shed\n"),
    }
}
