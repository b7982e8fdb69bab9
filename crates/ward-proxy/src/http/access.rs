//! The per-request record of HTTP mode: one access-log event (`ward::access`, every request,
//! allowed or denied) and the request metrics, emitted once when the request is answered.
//!
//! Nothing here is rebuilt per request that can be kept per connection: [`RequestMetrics`]
//! holds the connection's handles on its listener's duration histogram and request counters
//! (found once in the registry, instead of hashing an owned label set on every request), and
//! the path is copied for the log line only when that line is enabled.

use std::sync::Mutex;
use std::time::Instant;

use hyper::{Method, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::json;

use super::{json_error, Body};
use crate::metrics::{ConnLabels, Metrics, RequestLabels};

/// True when the access-log event would be recorded (the log filter admits
/// `ward::access=info`).
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: "ward::access", tracing::Level::INFO)
}

/// One connection's handles on its listener's request metrics.
#[derive(Debug)]
pub struct RequestMetrics {
    listener: String,
    direction: &'static str,
    duration: Histogram,
    family: prometheus_client::metrics::family::Family<RequestLabels, Counter>,
    /// The counters this connection has used, by decision and status class.
    counters: Mutex<Vec<(&'static str, &'static str, Counter)>>,
}

impl RequestMetrics {
    /// Handles for requests on `listener` in `direction`.
    pub fn new(metrics: &Metrics, listener: &str, direction: &'static str) -> Self {
        let duration = metrics
            .request_duration
            .get_or_create(&ConnLabels {
                listener: listener.to_owned(),
                direction,
            })
            .clone();
        Self {
            listener: listener.to_owned(),
            direction,
            duration,
            family: metrics.requests.clone(),
            counters: Mutex::new(Vec::new()),
        }
    }

    fn count(&self, decision: &'static str, status: &'static str) {
        let Ok(mut counters) = self.counters.lock() else {
            return;
        };
        if let Some((_, _, c)) = counters
            .iter()
            .find(|(d, s, _)| *d == decision && *s == status)
        {
            c.inc();
            return;
        }
        let counter = self
            .family
            .get_or_create(&RequestLabels {
                listener: self.listener.clone(),
                direction: self.direction,
                decision,
                status,
            })
            .clone();
        counter.inc();
        counters.push((decision, status, counter));
    }
}

/// One request's facts, logged and counted once when it is answered.
#[derive(Debug)]
pub struct RequestLog<'a> {
    /// The connection's metric handles (and its listener and direction).
    pub metrics: &'a RequestMetrics,
    /// The network peer (inbound) or the upstream (outbound) SPIFFE ID.
    pub peer: &'a str,
    /// Method as sent.
    pub method: Method,
    /// Path as authorized (normalized), or as sent when it could not be normalized; empty
    /// when the access log is off.
    pub path: String,
    /// Whether the access-log event is recorded.
    pub logged: bool,
    /// When the request arrived.
    pub started: Instant,
}

impl<'a> RequestLog<'a> {
    /// A record for a request that arrived now with `method` and the path as sent.
    pub fn new(metrics: &'a RequestMetrics, peer: &'a str, method: &Method, path: &str) -> Self {
        let logged = access_log_enabled();
        Self {
            metrics,
            peer,
            method: method.clone(),
            path: if logged {
                path.to_owned()
            } else {
                String::new()
            },
            logged,
            started: Instant::now(),
        }
    }

    /// Sets the path the log names (the normalized one, once known).
    pub fn set_path(&mut self, path: &str) {
        if self.logged {
            path.clone_into(&mut self.path);
        }
    }

    /// Logs, and builds the sidecar's own JSON answer for, a request it could not complete
    /// (`too_large` and the app/upstream failures); `decision` and `rule` as in [`answered`].
    ///
    /// [`answered`]: RequestLog::answered
    pub fn refuse(
        &self,
        decision: &'static str,
        rule: &str,
        (status, code, message): (StatusCode, &'static str, String),
    ) -> Response<Body> {
        self.answered(status, decision, rule, code);
        json_error(status, code, &message, json!({}))
    }

    /// Emits the access-log event and the metrics for the answer `status`.
    pub fn answered(&self, status: StatusCode, decision: &'static str, rule: &str, detail: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let m = self.metrics;
        m.count(decision, class);
        m.duration.observe(secs);
        tracing::info!(
            target: "ward::access",
            direction = m.direction,
            listener = %m.listener,
            peer = %self.peer,
            method = %self.method,
            path = %self.path,
            status = status.as_u16(),
            decision,
            rule,
            duration_ms = (secs * 1000.0) as u64,
            detail,
            "request"
        );
    }
}
