//! `/readyz` and `/metrics` of the CA's API: ready once it holds a valid serving certificate
//! and its state answers; metrics in the OpenMetrics text format, labelled as such.

use hyper::header::CONTENT_TYPE;
use hyper::StatusCode;

use super::api::{text, Resp};
use super::CaService;
use crate::state::unix_now;

/// Ready: a valid serving certificate and a state that answers.
pub(super) async fn ready(ca: &CaService) -> Resp {
    match ca.store.current() {
        Some(id) if !id.is_expired_at(unix_now()) => {}
        _ => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no serving certificate\n",
            )
        }
    }
    match ca.state.ping().await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
    }
}

/// The metrics in the OpenMetrics text format, labelled as such: a scraper that is not told
/// the format (Prometheus 3) refuses the scrape.
pub(super) fn metrics(ca: &CaService) -> Resp {
    let mut resp = text(StatusCode::OK, ca.metrics.encode());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}
