//! The CA's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Issuances by attestor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttestorLabel {
    /// `join_token`, `kubernetes`, `renew`, `ca`.
    pub attestor: &'static str,
}

/// Refusals by stable error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The API error code.
    pub reason: &'static str,
}

/// Success or failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Latency by endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// The route, e.g. `/v1/enroll`.
    pub endpoint: &'static str,
}

type Latency = Family<EndpointLabel, Histogram, fn() -> Histogram>;

/// A foreign trust domain.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabel {
    /// Its name.
    pub trust_domain: String,
}

/// Every metric the CA exports.
#[derive(Debug)]
pub struct CaMetrics {
    registry: Registry,
    /// Certificates issued.
    pub issuances: Family<AttestorLabel, Counter>,
    /// Requests refused.
    pub denials: Family<ReasonLabel, Counter>,
    /// TLS handshakes refused (a client certificate that fails verification, a timeout).
    pub handshake_failures: Family<ReasonLabel, Counter>,
    /// Connections closed at accept, by reason (`per_ip_limit`, `max_connections`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Request latency in seconds.
    pub latency: Latency,
    /// notAfter of the issuing certificate, Unix seconds.
    pub issuer_expiry: Gauge,
    /// Config reloads (SIGHUP) by result.
    pub reloads: Family<ResultLabel, Counter>,
    /// 1 while `/readyz` would answer 200 (a valid serving certificate, a state that
    /// answers), else 0; brought up to date by every scrape and every `/readyz`.
    pub ready: Gauge,
    /// Federation: per foreign trust domain, when its bundle was last fetched and accepted.
    pub federation_refreshed: Family<DomainLabel, Gauge>,
    /// Federation: the `spiffe_sequence` of each foreign bundle in force.
    pub federation_sequence: Family<DomainLabel, Gauge>,
    /// Federation: fetches that failed or were refused, by foreign trust domain.
    pub federation_failures: Family<DomainLabel, Counter>,
    /// Federation: documents with no keys accepted from an authenticated endpoint (every key
    /// of the trust domain revoked), by foreign trust domain.
    pub federation_emptied: Family<DomainLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 3.0, 12))
}

impl Default for CaMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let issuances = Family::<AttestorLabel, Counter>::default();
        let denials = Family::<ReasonLabel, Counter>::default();
        let handshake_failures = Family::<ReasonLabel, Counter>::default();
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let issuer_expiry = Gauge::default();
        let ready = Gauge::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "ward_ca_reloads",
            "Config reloads (SIGHUP) by result; a failed one changed nothing",
            reloads.clone(),
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
            "ward_ca_ready",
            "1 while the CA is ready (valid serving certificate, state answering), else 0",
            ready.clone(),
        );
        registry.register(
            "ward_ca_issuances",
            "Certificates issued, by attestor",
            issuances.clone(),
        );
        registry.register(
            "ward_ca_denials",
            "Requests refused, by error code",
            denials.clone(),
        );
        registry.register(
            "ward_ca_handshake_failures",
            "TLS handshakes refused, by reason (ward-tls refusal codes, handshake_timeout, ...)",
            handshake_failures.clone(),
        );
        registry.register(
            "ward_ca_connections_refused",
            "Connections closed at accept, by reason (per_ip_limit, max_connections)",
            connections_refused.clone(),
        );
        registry.register(
            "ward_ca_request_duration_seconds",
            "Request latency by endpoint",
            latency.clone(),
        );
        registry.register(
            "ward_ca_issuer_expiry_timestamp_seconds",
            "notAfter of the issuing certificate",
            issuer_expiry.clone(),
        );
        let federation_refreshed = Family::<DomainLabel, Gauge>::default();
        let federation_sequence = Family::<DomainLabel, Gauge>::default();
        let federation_failures = Family::<DomainLabel, Counter>::default();
        let federation_emptied = Family::<DomainLabel, Counter>::default();
        registry.register(
            "ward_ca_federation_refreshed_timestamp_seconds",
            "When each foreign trust domain's bundle was last fetched and accepted",
            federation_refreshed.clone(),
        );
        registry.register(
            "ward_ca_federation_sequence",
            "spiffe_sequence of each foreign bundle in force",
            federation_sequence.clone(),
        );
        registry.register(
            "ward_ca_federation_failures",
            "Foreign bundle fetches that failed or were refused, by trust domain",
            federation_failures.clone(),
        );
        registry.register(
            "ward_ca_federation_emptied",
            "Foreign bundles with no keys accepted from an authenticated endpoint: every key of the trust domain revoked",
            federation_emptied.clone(),
        );
        Self {
            registry,
            federation_refreshed,
            federation_sequence,
            federation_failures,
            federation_emptied,
            issuances,
            handshake_failures,
            connections_refused,
            denials,
            latency,
            issuer_expiry,
            ready,
            reloads,
        }
    }
}

impl CaMetrics {
    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
