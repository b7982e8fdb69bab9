//! `/healthz`, `/readyz` and `/metrics`, on the CA's API and on its plain-HTTP ops listener
//! (`ops:`, for probes and scrapers that hold no client certificate): ready once it holds a
//! valid serving certificate and its state answers, and not while draining or behind the CA
//! version in the database; metrics in the
//! OpenMetrics text format, labelled as such, with `ward_ca_ready` brought up to date first.

use hyper::header::CONTENT_TYPE;
use hyper::StatusCode;

use super::http::{text, Resp};
use super::CaService;
use crate::state::{unix_now, StateError};

/// Why the CA is not ready.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    /// A replica behind the CA version in the database (the text says which and why).
    #[error("{0}")]
    Behind(String),
    /// No valid serving certificate.
    #[error("no serving certificate")]
    NoServingCertificate,
    /// The state does not answer.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why the CA is not ready, or `Ok` when it is; sets `ward_ca_ready`.
async fn readiness(ca: &CaService) -> Result<(), NotReady> {
    let verdict = match (ca.behind.why(), ca.store.current()) {
        (Some(why), _) => Err(NotReady::Behind(why)),
        (None, Some(id)) if !id.is_expired_at(unix_now()) => {
            ca.state.ping().await.map_err(NotReady::from)
        }
        _ => Err(NotReady::NoServingCertificate),
    };
    ca.metrics.ready.set(i64::from(verdict.is_ok()));
    verdict
}

/// Ready: a valid serving certificate and a state that answers.
pub(super) async fn ready(ca: &CaService) -> Resp {
    match readiness(ca).await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

/// The metrics in the OpenMetrics text format, labelled as such: a scraper that is not told
/// the format (Prometheus 3) refuses the scrape.
pub(super) async fn metrics(ca: &CaService) -> Resp {
    let _ = readiness(ca).await;
    let mut resp = text(StatusCode::OK, ca.metrics.encode());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}
