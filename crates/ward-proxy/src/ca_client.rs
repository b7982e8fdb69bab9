//! The sidecar's client for the ward-ca API: enroll, renew and fetch the bundle, as JSON over
//! HTTPS. The CA is authenticated by SPIFFE ID (`server_id`) against the proxy's own bundle
//! store, which starts from the configured bootstrap bundle and follows `/v1/bundle`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use ward_identity::IdPattern;
use ward_tls::provider::{crypto_provider, PROTOCOL_VERSIONS};
use ward_tls::{CertStore, SpiffeServerVerifier};

/// Largest response accepted from the CA.
const MAX_RESPONSE: usize = 1024 * 1024;
/// Bound on one request, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(15);

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

    fn tls(&self, store: &CertStore, with_identity: bool) -> Result<ClientConfig, String> {
        let verifier =
            SpiffeServerVerifier::new(store.bundles().clone(), vec![self.server_id.clone()]);
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = if with_identity {
            builder.with_client_cert_resolver(store.resolver())
        } else {
            builder.with_no_client_auth()
        };
        // A resumed session would authenticate with the certificate of its first handshake.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
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
    ) -> Result<CaResponse, String> {
        let exchange = async {
            let where_ = format!("{}{path}", self.url.to_string().trim_end_matches('/'));
            let host = self
                .url
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = self.url.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("{where_}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host.clone()).map_err(|e| format!("{where_}: {e}"))?;
            let tls = TlsConnector::from(Arc::new(self.tls(store, with_identity)?))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{where_}: TLS: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("{where_}: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, host);
            if body.is_some() {
                req = req.header(CONTENT_TYPE, "application/json");
            }
            if let Some(tag) = etag {
                req = req.header(IF_NONE_MATCH, tag);
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| e.to_string())?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("{where_}: {e}"))?;
            let status = resp.status();
            let etag = resp
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| format!("{where_}: {e}"))?
                .to_bytes();
            Ok(CaResponse { status, etag, body })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{}{path}: timed out", self.url))?
    }
}
