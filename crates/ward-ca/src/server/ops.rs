//! The ops listener (`ops: 127.0.0.1:9902`): `/healthz`, `/readyz` and `/metrics` over plain
//! HTTP for Kubernetes probes and Prometheus, which hold no client certificate for the API.
//! Nothing here is secret (the same answers the API gives any authenticated client), and
//! nothing changes state; bind it to loopback or a pod address, not a public one. Readiness
//! turns 503 as soon as the daemon starts draining, so a load balancer stops sending new
//! enrollments before the API stops accepting.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use ward_daemon::{Lifecycle, Phase};

use super::http::text;
use super::CaService;

async fn answer(
    req: Request<Incoming>,
    ca: Arc<CaService>,
    lifecycle: Lifecycle,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if lifecycle.phase() >= Phase::Draining => {
            ca.metrics.ready.set(0);
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
        }
        "/readyz" => super::health::ready(&ca).await,
        "/metrics" => super::health::metrics(&ca).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "not found (this listener serves /healthz, /readyz, /metrics)\n",
        ),
    }
}

/// Serves the ops endpoints on `listener` until the task is aborted.
pub(super) async fn serve(listener: TcpListener, ca: Arc<CaService>, lifecycle: Lifecycle) {
    let service = ca.clone();
    super::public::serve(listener, None, "ops listener", &service, move |req| {
        answer(req, ca.clone(), lifecycle.clone())
    })
    .await;
}
