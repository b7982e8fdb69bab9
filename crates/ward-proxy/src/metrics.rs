//! Prometheus metrics of the proxy (prometheus-client, OpenMetrics text on `/metrics`).
//!
//! prometheus-client writes label values as they are, so a value with `"`, `\` or a line feed
//! would make the whole page unparseable. Every label value here is therefore either from a
//! closed set (`&'static str`), a listener name (the config allows only `a-z A-Z 0-9 . _ -`),
//! or a [`LabelText`], which escapes as the text format requires (rule names are free text).

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// A label value of free text, escaped (`\\`, `\"`, `\n`) when written.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LabelText(pub String);

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Listener and direction (`inbound` / `outbound`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

/// A closed connection and why it closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Close reason code.
    pub reason: &'static str,
}

/// A failed handshake and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Refusal reason code.
    pub reason: &'static str,
}

/// A completed handshake: the key-exchange group and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// The negotiated key-exchange group (`X25519MLKEM768`, `X25519`, `secp256r1`).
    pub group: &'static str,
    /// `full`, `full_hello_retry` (a HelloRetryRequest round trip) or `resumed`.
    pub kind: &'static str,
}

/// An authorization decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Listener name.
    pub listener: String,
    /// `allow`, `deny` or `audit-deny`.
    pub decision: &'static str,
    /// The deciding rule, or `default-deny` (free text in the policy file: escaped).
    pub rule: LabelText,
}

/// Bytes through a listener, by flow (`in` = from the network peer, `out` = to it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `in` or `out`.
    pub flow: &'static str,
}

/// An HTTP request's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Listener name.
    pub listener: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `allow`, `deny`, `audit-deny`, or `-` where no rule was asked (outbound, bad paths).
    pub decision: &'static str,
    /// Status class: `2xx`, `4xx`, ...
    pub status: &'static str,
}

/// A reload attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `policy` or `identity`.
    pub kind: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

/// An attempt to get a certificate from the CA.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenewalLabels {
    /// `enroll` (with the token) or `renew` (with the current certificate).
    pub kind: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

/// The metrics a CA identity source keeps up to date (clones share the values).
#[derive(Clone, Debug, Default)]
pub struct SourceMetrics {
    /// See [`Metrics::ca_unreachable_since`].
    pub ca_unreachable_since: Gauge,
    /// See [`Metrics::bundle_refreshed`].
    pub bundle_refreshed: Gauge,
    /// See [`Metrics::renewals`].
    pub renewals: Family<RenewalLabels, Counter>,
}

type HistogramFamily = Family<ConnLabels, Histogram, fn() -> Histogram>;

/// Every metric the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections accepted.
    pub opened: Family<ConnLabels, Counter>,
    /// Connections finished, by close reason.
    pub closed: Family<CloseLabels, Counter>,
    /// Connections open now.
    pub active: Family<ConnLabels, Gauge>,
    /// Connections whose TLS session was resumed.
    pub resumed: Family<ConnLabels, Counter>,
    /// Handshakes completed, by key-exchange group and kind.
    pub handshakes: Family<HandshakeLabels, Counter>,
    /// Handshakes that failed, by reason.
    pub handshake_failures: Family<FailLabels, Counter>,
    /// Authorization decisions.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Bytes relayed.
    pub bytes: Family<BytesLabels, Counter>,
    /// Connection lifetimes in seconds.
    pub duration: HistogramFamily,
    /// notAfter of the identity in force, Unix seconds.
    pub identity_expiry: Gauge,
    /// Since when no configured CA has answered, Unix seconds; 0 while one does.
    pub ca_unreachable_since: Gauge,
    /// When the trust bundle was last fetched from the CA and found current (a 200 or a
    /// 304), Unix seconds; 0 until the first time.
    pub bundle_refreshed: Gauge,
    /// Enrollments and renewals by result.
    pub renewals: Family<RenewalLabels, Counter>,
    /// Policy and identity reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Connections closed at once because max_connections was reached.
    pub refused: Family<ConnLabels, Counter>,
    /// Redirected connections relayed in plaintext to a `passthrough` destination.
    pub passthrough: Family<ConnLabels, Counter>,
    /// HTTP requests answered, by decision and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latencies in seconds (arrival to response head).
    pub request_duration: HistogramFamily,
    /// The Workload API's streams and calls.
    pub workload_api: ward_workload::ApiMetrics,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            opened: Family::default(),
            closed: Family::default(),
            active: Family::default(),
            resumed: Family::default(),
            handshakes: Family::default(),
            handshake_failures: Family::default(),
            decisions: Family::default(),
            bytes: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            identity_expiry: Gauge::default(),
            ca_unreachable_since: Gauge::default(),
            bundle_refreshed: Gauge::default(),
            renewals: Family::default(),
            reloads: Family::default(),
            refused: Family::default(),
            passthrough: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            workload_api: ward_workload::ApiMetrics::default(),
            registry: Registry::default(),
        };
        m.workload_api.register(&mut registry);
        registry.register(
            "ward_connections_opened",
            "Connections accepted",
            m.opened.clone(),
        );
        registry.register(
            "ward_connections_closed",
            "Connections finished, by close reason",
            m.closed.clone(),
        );
        registry.register(
            "ward_connections_active",
            "Connections open now",
            m.active.clone(),
        );
        registry.register(
            "ward_tls_resumed",
            "Connections whose TLS 1.3 session was resumed (identities re-checked, not re-sent)",
            m.resumed.clone(),
        );
        registry.register(
            "ward_tls_handshakes",
            "TLS handshakes completed, by key-exchange group (X25519MLKEM768 is post-quantum) and kind",
            m.handshakes.clone(),
        );
        registry.register(
            "ward_handshake_failures",
            "TLS handshakes that failed, by reason",
            m.handshake_failures.clone(),
        );
        registry.register(
            "ward_authz_decisions",
            "Authorization decisions by listener, decision and rule",
            m.decisions.clone(),
        );
        registry.register(
            "ward_bytes",
            "Bytes relayed (in: from the peer, out: to the peer)",
            m.bytes.clone(),
        );
        registry.register(
            "ward_connection_duration_seconds",
            "Connection lifetimes",
            m.duration.clone(),
        );
        registry.register(
            "ward_identity_expiry_timestamp_seconds",
            "notAfter of the identity in force",
            m.identity_expiry.clone(),
        );
        registry.register(
            "ward_ca_unreachable_since_timestamp_seconds",
            "Since when no configured CA replica has answered (0 while one does)",
            m.ca_unreachable_since.clone(),
        );
        registry.register(
            "ward_bundle_refreshed_timestamp_seconds",
            "When the trust bundle was last fetched from the CA and found current (0: never)",
            m.bundle_refreshed.clone(),
        );
        registry.register(
            "ward_identity_renewals",
            "Certificates asked of the CA, by kind (enroll, renew) and result",
            m.renewals.clone(),
        );
        registry.register(
            "ward_build",
            "The running build: release and commit",
            Info::new(vec![
                ("version", ward_cli::VERSION),
                ("commit", ward_cli::COMMIT),
            ]),
        );
        registry.register(
            "ward_reloads",
            "Policy and identity reloads by result",
            m.reloads.clone(),
        );
        registry.register(
            "ward_connections_refused",
            "Connections closed at once by the max_connections limit",
            m.refused.clone(),
        );
        registry.register(
            "ward_passthrough_connections",
            "Redirected connections relayed in plaintext to a passthrough destination (no sidecar there)",
            m.passthrough.clone(),
        );
        registry.register(
            "ward_http_requests",
            "HTTP requests answered, by listener, decision and status class",
            m.requests.clone(),
        );
        registry.register(
            "ward_http_request_duration_seconds",
            "HTTP request latency, arrival to response head",
            m.request_duration.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The metrics a CA identity source updates.
    pub fn source(&self) -> SourceMetrics {
        SourceMetrics {
            ca_unreachable_since: self.ca_unreachable_since.clone(),
            bundle_refreshed: self.bundle_refreshed.clone(),
            renewals: self.renewals.clone(),
        }
    }

    /// Counts a failed handshake on `listener` with its reason code.
    pub fn handshake_failed(&self, listener: &str, direction: &'static str, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&FailLabels {
                listener: listener.to_owned(),
                direction,
                reason,
            })
            .inc();
    }

    /// Counts a completed handshake on `listener` and returns its key-exchange group's name.
    pub fn handshake(
        &self,
        listener: &str,
        direction: &'static str,
        tls: &rustls::CommonState,
    ) -> &'static str {
        let group = tls
            .negotiated_key_exchange_group()
            .map_or("-", |g| ward_tls::group_label(g.name()));
        let kind = match tls.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => "resumed",
            Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => "full_hello_retry",
            _ => "full",
        };
        self.handshakes
            .get_or_create(&HandshakeLabels {
                listener: listener.to_owned(),
                direction,
                group,
                kind,
            })
            .inc();
        group
    }

    /// Counts a reload attempt.
    pub fn reload(&self, kind: &'static str, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ReloadLabels { kind, result })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_name_of_any_text_keeps_metrics_parseable() {
        let metrics = Metrics::default();
        let rule = "say \"allow\" \\ all\nof it";
        metrics
            .decisions
            .get_or_create(&DecisionLabels {
                listener: "api".into(),
                decision: "deny",
                rule: LabelText(rule.into()),
            })
            .inc();
        let text = metrics.encode();
        assert!(
            text.contains(r#"rule="say \"allow\" \\ all\nof it"} 1"#),
            "{text}"
        );
        ward_e2e::metrics::promtool_parses(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
