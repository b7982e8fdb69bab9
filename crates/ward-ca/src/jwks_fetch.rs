//! Fetching a JWKS over HTTPS (the Kubernetes API server's `/openid/v1/jwks`), trusting only
//! the configured CA file and sending a bearer token when one is configured.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Bound on connecting, handshaking and reading the response.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where to fetch a JWKS from and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksUrl {
    /// `https://host[:port]/path`.
    pub url: Uri,
    /// PEM roots that sign the server's certificate.
    pub ca_file: std::path::PathBuf,
    /// File holding a bearer token (re-read on every fetch; projected tokens rotate).
    pub token_file: Option<std::path::PathBuf>,
}

/// Parses and checks a JWKS URL: it must be `https` with a host.
pub fn parse_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(format!("{text:?} must be an https:// URL with a host"));
    }
    Ok(uri)
}

fn roots(ca_file: &Path) -> Result<RootCertStore, String> {
    let certs = ward_tls::pem::load_certs(ca_file).map_err(|e| e.to_string())?;
    let mut store = RootCertStore::empty();
    for c in certs {
        store
            .add(c)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    Ok(store)
}

/// GETs the JWKS document.
pub async fn fetch(src: &JwksUrl) -> Result<Vec<u8>, String> {
    tokio::time::timeout(TIMEOUT, fetch_inner(src))
        .await
        .map_err(|_| format!("{}: timed out", src.url))?
}

async fn fetch_inner(src: &JwksUrl) -> Result<Vec<u8>, String> {
    let url = &src.url;
    let host = url
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_u16().unwrap_or(443);
    let config = ClientConfig::builder_with_provider(ward_tls::provider::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(&src.ca_file)?)
        .with_no_client_auth();
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{url}: {e}"))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("{url}: TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::get(path).header(HOST, host);
    if let Some(file) = &src.token_file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        req = req.header(AUTHORIZATION, format!("Bearer {}", token.trim()));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status() != StatusCode::OK {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
