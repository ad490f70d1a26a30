//! The admin listener: `/live`, `/ready`, `/metrics`, and `/drain` (GET: progress as JSON;
//! POST: start the drain). `GET /drain/prestop` is for a Kubernetes preStop hook (which can
//! only GET): it starts the drain and answers once every client has been told to go.
//!
//! Ready means: Redis answered the last topology check and the sidecar is not draining.
//! Kubernetes removes a pod that is not ready from the Service's endpoints, which is the
//! first step of a drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use hyper::body::Incoming;

use crate::app::AppState;
use crate::http_util::{HttpResponse, json, respond, text};

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

pub async fn handle(req: hyper::Request<Incoming>, app: Arc<AppState>) -> HttpResponse {
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "ok\n"),
        "/ready" => match app.health.ready(app.drain.started()) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        },
        "/drain" if req.method() == http::Method::POST => {
            app.drain.request();
            json(StatusCode::ACCEPTED, &app.drain.status())
        }
        "/drain" => json(StatusCode::OK, &app.drain.status()),
        "/drain/prestop" => {
            app.drain.request();
            let limit = app.config.drain_timeout + std::time::Duration::from_secs(1);
            let status = if app.drain.all_told(limit).await { StatusCode::OK } else { StatusCode::GATEWAY_TIMEOUT };
            json(status, &app.drain.status())
        }
        "/metrics" => respond(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", app.metrics.render()),
        _ => text(StatusCode::NOT_FOUND, "not found: /live, /ready, /metrics, /drain, /drain/prestop\n"),
    }
}
