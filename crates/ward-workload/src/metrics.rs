//! The endpoint's metrics, registered into the sidecar's registry: open streams, calls by
//! method and by what became of them at the door, connections closed by the server's caps
//! and deadlines, and streams and connections the HTTP/2 server reset on its own. Every label
//! value is from a closed set: a caller chooses none of them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::resets::Scope;

/// Labels of `ward_workload_api_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The gRPC method (`FetchX509SVID`, ...), or `unknown` for any other path.
    pub method: &'static str,
    /// `admitted`, `invalid_argument` (no `workload.spiffe.io` header) or `permission_denied`
    /// (a caller the kernel says is not allowed).
    pub result: &'static str,
}

/// Labels of `ward_workload_api_connections_closed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    /// `not_allowed` (answered once, then closed), `not_allowed_closed` (closed unanswered:
    /// the refusal pool was full), `max_connections`, `per_uid_limit`, `first_call_timeout`
    /// or `idle_timeout`.
    pub reason: &'static str,
}

/// Labels of `ward_workload_api_http2_resets_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResetLabels {
    /// `stream` (RST_STREAM) or `connection` (GOAWAY).
    pub scope: &'static str,
    /// The HTTP/2 error code's name (`protocol_error`, `refused_stream`, ...; `other`).
    pub code: &'static str,
}

/// The Workload API's metrics; clones share the same series.
#[derive(Clone, Debug, Default)]
pub struct ApiMetrics {
    /// Streams open now.
    pub streams: Gauge,
    /// Calls, by method and admission.
    pub calls: Family<CallLabels, Counter>,
    /// Connections the server closed, by why.
    pub connections_closed: Family<ClosedLabels, Counter>,
    /// Streams and connections the HTTP/2 server reset with an error, by scope and code.
    pub http2_resets: Family<ResetLabels, Counter>,
    /// The (scope, code) pairs already logged.
    logged_resets: Arc<Mutex<HashSet<(&'static str, &'static str)>>>,
}

impl ApiMetrics {
    /// Adds the series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ward_workload_api_streams",
            "Workload API streams open now",
            self.streams.clone(),
        );
        registry.register(
            "ward_workload_api_calls",
            "Workload API calls by method and admission",
            self.calls.clone(),
        );
        registry.register(
            "ward_workload_api_connections_closed",
            "Workload API connections closed by the server's caps and deadlines, by reason",
            self.connections_closed.clone(),
        );
        registry.register(
            "ward_workload_api_http2_resets",
            "Workload API streams (RST_STREAM) and connections (GOAWAY) the HTTP/2 server ended with an error code, by scope and code",
            self.http2_resets.clone(),
        );
    }

    /// Counts a reset the HTTP/2 server sent, and logs the first of each scope and code.
    pub fn reset(&self, scope: Scope, code: &'static str) {
        let scope = scope.as_str();
        self.http2_resets
            .get_or_create(&ResetLabels { scope, code })
            .inc();
        let first = self
            .logged_resets
            .lock()
            .is_ok_and(|mut seen| seen.insert((scope, code)));
        if first {
            tracing::warn!(scope, code, "Workload API: the HTTP/2 server reset a {scope} with {code} before it reached ward (a malformed or over-limit request); logged once, counted in ward_workload_api_http2_resets_total");
        }
    }

    /// Counts a connection the server closed.
    pub fn closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ClosedLabels { reason })
            .inc();
    }
}

/// Counts one open stream until dropped.
#[derive(Debug)]
pub struct StreamGuard(Gauge);

impl StreamGuard {
    /// Counts a stream opening.
    pub fn open(metrics: &ApiMetrics) -> Self {
        metrics.streams.inc();
        Self(metrics.streams.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
