//! The sidecar's client for the ward-ca API: enroll, renew and fetch the bundle, as JSON over
//! HTTPS (through ward-https, the one outbound client). The CA is authenticated by SPIFFE ID
//! (`server_id`) against the proxy's own bundle store, which starts from the configured
//! bootstrap bundle and follows `/v1/bundle`.
//!
//! Several replicas may be configured: each request starts with the one that answered last and
//! moves on, URL by URL (and address by address within a URL), when one gives no answer or a
//! 5xx. A 4xx is a verdict and is not asked again elsewhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Method, StatusCode, Uri};
use prometheus_client::metrics::gauge::Gauge;
use ward_https::{HttpsError, HttpsRequest, Limits, ServerAuth};
use ward_identity::{unix_now, IdPattern};
use ward_tls::CertStore;

/// Bounds on one request to the CA.
const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(15),
    max_body: 1024 * 1024,
};

/// A response: status, ETag, body.
#[derive(Debug)]
pub struct CaResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// The ETag header, if any.
    pub etag: Option<String>,
    /// Body bytes.
    pub body: Bytes,
}

/// Talks to a CA, at one or several URLs.
#[derive(Debug, Clone)]
pub struct CaClient {
    urls: Vec<Uri>,
    server_id: IdPattern,
    /// The URL that answered last: where the next request starts.
    preferred: Arc<AtomicUsize>,
    /// Unix time since when no URL has answered; 0 while one does (the metric
    /// `ward_ca_unreachable_since_timestamp_seconds` itself, which `/ready` reads too).
    unreachable_since: Gauge,
}

impl CaClient {
    /// A client for the CA replicas at `urls` (https) that must prove `server_id`, keeping
    /// `unreachable_since` up to date.
    pub fn new(urls: Vec<Uri>, server_id: IdPattern, unreachable_since: Gauge) -> Self {
        Self {
            urls,
            server_id,
            preferred: Arc::new(AtomicUsize::new(0)),
            unreachable_since,
        }
    }

    /// Records whether the last request got an answer, logging the changes only.
    fn record(&self, answered: bool, error: &dyn std::fmt::Display) {
        let before = self.unreachable_since.get();
        if answered && before != 0 {
            self.unreachable_since.set(0);
            tracing::info!(down_for_secs = unix_now() - before, "a CA answers again");
        } else if !answered && before == 0 {
            self.unreachable_since.set(unix_now());
            tracing::error!(urls = self.urls.len(), error = %error, "no CA answers; the current SVID stays in use until it expires, and renewal is retried");
        }
    }

    /// Sends one request; `with_identity` presents the workload's current SVID (mTLS).
    pub async fn request(
        &self,
        store: &CertStore,
        method: Method,
        path: &str,
        body: Option<String>,
        etag: Option<&str>,
        with_identity: bool,
    ) -> Result<CaResponse, HttpsError> {
        let auth = ServerAuth::Spiffe {
            bundles: store.bundles().clone(),
            expected: vec![self.server_id.clone()],
            identity: with_identity.then(|| store.resolver()),
        };
        let mut headers = Vec::new();
        if body.is_some() {
            headers.push((CONTENT_TYPE, "application/json".to_owned()));
        }
        if let Some(tag) = etag {
            headers.push((IF_NONE_MATCH, tag.to_owned()));
        }
        let body = body.map(Bytes::from);
        let n = self.urls.len().max(1);
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = Err(HttpsError::BadUrl("no CA URL configured".into()));
        for i in (0..n).map(|k| (start + k) % n) {
            let Some(url) = self.urls.get(i) else { break };
            let request = HttpsRequest {
                method: method.clone(),
                url,
                path,
                headers: headers.clone(),
                body: body.clone(),
            };
            last = ward_https::send(&auth, request, LIMITS).await;
            if !ward_https::worth_another_server(&last) {
                self.preferred.store(i, Ordering::Relaxed);
                break;
            }
            if n > 1 {
                let why = match &last {
                    Ok(resp) => format!("HTTP {}", resp.status),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(url = %url, error = %why, "CA replica did not answer; trying the next");
            }
        }
        match &last {
            Ok(resp) => self.record(!resp.status.is_server_error(), &resp.status),
            Err(e) => self.record(!ward_https::worth_another_server(&last), e),
        }
        let resp = last?;
        Ok(CaResponse {
            status: resp.status,
            etag: resp.header(&ETAG).map(str::to_owned),
            body: resp.body,
        })
    }
}
