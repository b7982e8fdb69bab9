//! The sidecar's client for the ward-ca API: enroll, renew and fetch the bundle, as JSON over
//! HTTPS (through ward-https, the one outbound client). The CA is authenticated by SPIFFE ID
//! (`server_id`) against the proxy's own bundle store, which starts from the configured
//! bootstrap bundle and follows `/v1/bundle`.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Method, StatusCode, Uri};
use ward_https::{HttpsError, HttpsRequest, Limits, ServerAuth};
use ward_identity::IdPattern;
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

/// Talks to one CA.
#[derive(Debug, Clone)]
pub struct CaClient {
    url: Uri,
    server_id: IdPattern,
}

impl CaClient {
    /// A client for the CA at `url` (https) that must prove `server_id`.
    pub fn new(url: Uri, server_id: IdPattern) -> Self {
        Self { url, server_id }
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
        let request = HttpsRequest {
            method,
            url: &self.url,
            path,
            headers,
            body: body.map(Bytes::from),
        };
        let resp = ward_https::send(&auth, request, LIMITS).await?;
        Ok(CaResponse {
            status: resp.status,
            etag: resp.header(&ETAG).map(str::to_owned),
            body: resp.body,
        })
    }
}
