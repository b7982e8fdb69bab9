//! Fetching a JWKS over HTTPS (the Kubernetes API server's `/openid/v1/jwks`) through
//! ward-https, trusting only the configured CA file and sending a bearer token when one is
//! configured (re-read on every fetch: projected tokens rotate).

use std::path::PathBuf;
use std::time::Duration;

use hyper::header::AUTHORIZATION;
use hyper::{Method, StatusCode, Uri};
use ward_https::{HttpsError, HttpsRequest, Limits, ServerAuth};
use ward_tls::PemError;

/// Bounds on one fetch: connect to last byte, and the largest document accepted.
const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(10),
    max_body: 1024 * 1024,
};

/// Where to fetch a JWKS from and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksUrl {
    /// `https://host[:port]/path`.
    pub url: Uri,
    /// PEM roots that sign the server's certificate.
    pub ca_file: PathBuf,
    /// File holding a bearer token (re-read on every fetch; projected tokens rotate).
    pub token_file: Option<PathBuf>,
}

/// Why a JWKS could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A JWKS file or bearer-token file could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The CA file that authenticates the server is unusable.
    #[error(transparent)]
    CaFile(#[from] PemError),
    /// The server could not be reached, or its certificate was refused.
    #[error(transparent)]
    Fetch(#[from] HttpsError),
    /// The server answered, but not 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: Uri,
        /// Its answer.
        status: StatusCode,
    },
    /// The document is not a usable JWKS.
    #[error("{origin}: {problem}")]
    Invalid {
        /// The file or URL.
        origin: String,
        /// What is wrong with it.
        problem: crate::jwt::JwksParseError,
    },
    /// The key set's lock was poisoned by a panic elsewhere.
    #[error("JWKS lock poisoned")]
    Poisoned,
}

/// Parses and checks a JWKS URL: it must be `https` with a host.
pub fn parse_url(text: &str) -> Result<Uri, String> {
    ward_https::parse_https_url(text).map_err(|e| e.to_string())
}

/// GETs the JWKS document.
pub async fn fetch(src: &JwksUrl) -> Result<Vec<u8>, JwksError> {
    let auth = ServerAuth::Roots(ward_tls::pem::load_certs(&src.ca_file)?);
    let mut headers = Vec::new();
    if let Some(file) = &src.token_file {
        let token = std::fs::read_to_string(file).map_err(|source| JwksError::Read {
            path: file.clone(),
            source,
        })?;
        headers.push((AUTHORIZATION, format!("Bearer {}", token.trim())));
    }
    let request = HttpsRequest {
        method: Method::GET,
        url: &src.url,
        path: src.url.path_and_query().map_or("/", |p| p.as_str()),
        headers,
        body: None,
    };
    let resp = ward_https::send(&auth, request, LIMITS).await?;
    if resp.status != StatusCode::OK {
        return Err(JwksError::Status {
            url: src.url.clone(),
            status: resp.status,
        });
    }
    Ok(resp.body.to_vec())
}
