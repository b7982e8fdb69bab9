//! The admin server (plaintext HTTP/1.1, loopback by default): `/live`, `/ready`,
//! `/metrics`, `/policy`, `/identity`.
//!
//! It has its own listener and tasks, outside `max_connections`, so health and metrics still
//! answer when the data path is saturated. It keeps serving while the proxy drains (so
//! `/ready` can report 503) and stops when connections are force-closed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use ward_identity::unix_now;
use ward_tls::CertStore;

use crate::metrics::Metrics;
use crate::policy_store::{sha256_hex, PolicyStore};
use ward_daemon::{Lifecycle, Phase};

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct AdminState {
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Policy in force.
    pub policy: PolicyStore,
    /// Identity in force.
    pub store: Arc<CertStore>,
    /// Running / draining.
    pub lifecycle: Lifecycle,
}

impl AdminState {
    /// Why the proxy is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.lifecycle.phase() != Phase::Running {
            return Some("shutting down");
        }
        match self.store.current() {
            None => Some("no identity yet"),
            Some(id) if id.is_expired_at(unix_now()) => Some("identity expired"),
            Some(_) => None,
        }
    }

    /// Unix time since when no CA has answered, while that is so.
    fn ca_down_since(&self) -> Option<i64> {
        let since = self.metrics.ca_unreachable_since.get();
        (since != 0).then_some(since)
    }

    /// What `/ready` says when ready: the plain word, or why the proxy is running on the SVID
    /// it has (ready still: it can serve until that expires).
    fn ready_detail(&self) -> String {
        match (self.ca_down_since(), self.store.current()) {
            (Some(since), Some(id)) => format!(
                "ready (degraded): no CA has answered for {}s; serving with the current SVID until it expires in {}s, renewal retried\n",
                unix_now() - since,
                id.leaf().not_after - unix_now()
            ),
            _ => "ready\n".to_owned(),
        }
    }
}

/// Serves admin requests until the proxy starts force-closing connections.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let closing = state.lifecycle.clone();
    loop {
        let sock = tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = closing.reached(Phase::Closing) => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&req, &state)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(sock), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", value.to_string())
}

fn route(req: &Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match req.uri().path() {
        "/live" => reply(StatusCode::OK, "text/plain", "live\n"),
        "/ready" => match state.not_ready() {
            None => reply(StatusCode::OK, "text/plain", state.ready_detail()),
            Some(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        "/policy" => {
            let p = state.policy.current();
            let rules: Vec<_> = p
                .policy
                .rules
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "action": r.action,
                        "from": r.from.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "listeners": r.listeners,
                        "methods": r.methods,
                        "paths": r.paths.as_ref().map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
                    })
                })
                .collect();
            json_reply(
                StatusCode::OK,
                &json!({
                    "version": p.hash,
                    "mode": p.policy.mode,
                    "path": p.path.display().to_string(),
                    "loaded_at": p.loaded_at,
                    "rules": rules,
                }),
            )
        }
        "/identity" => match state.store.current() {
            Some(id) => {
                let bundles = state.store.bundles().current();
                let roots = bundles.roots(&id.id().trust_domain()).unwrap_or_default();
                json_reply(
                    StatusCode::OK,
                    &json!({
                        "spiffe_id": id.id().as_str(),
                        "serial": id.leaf().serial_hex,
                        "not_before": id.leaf().not_before,
                        "not_after": id.leaf().not_after,
                        "expired": id.is_expired_at(unix_now()),
                        // Fingerprints, to follow a CA rotation from the outside.
                        "issuer_sha256": id.chain().get(1).map(|c| sha256_hex(c)),
                        "trust_bundle_sha256": roots.iter().map(|c| sha256_hex(c)).collect::<Vec<_>>(),
                    }),
                )
            }
            None => json_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "no identity yet"}),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}
