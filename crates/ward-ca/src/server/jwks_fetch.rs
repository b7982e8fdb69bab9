//! Fetching a JWKS over HTTPS (the Kubernetes API server's `/openid/v1/jwks`) through
//! ward-https, trusting only the configured CA file and sending a bearer token when one is
//! configured (re-read on every fetch: projected tokens rotate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::AUTHORIZATION;
use hyper::{Method, StatusCode, Uri};
use ward_https::{HttpsError, HttpsRequest, Limits, ServerAuth};
use ward_tls::PemError;

use crate::config::JwksUrl;

/// Bounds on one fetch: connect to last byte, and the largest document accepted.
const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(10),
    max_body: 1024 * 1024,
};

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
        problem: crate::authority::kube_jwt::JwksParseError,
    },
    /// The key set's lock was poisoned by a panic elsewhere.
    #[error("JWKS lock poisoned")]
    Poisoned,
}

/// Reads a file on tokio's blocking pool: a slow or hung file system must not stall the
/// async workers that serve the CA's API.
pub async fn read_file(path: &Path) -> Result<Vec<u8>, JwksError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read(&owned))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|source| JwksError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// GETs the JWKS document.
pub async fn fetch(src: &JwksUrl) -> Result<Vec<u8>, JwksError> {
    let ca_pem = read_file(&src.ca_file).await?;
    let roots = ward_tls::pem::certs_from_pem(&src.ca_file.display().to_string(), &ca_pem)?;
    let auth = ServerAuth::Roots(roots);
    let mut headers = Vec::new();
    if let Some(file) = &src.token_file {
        let token = String::from_utf8(read_file(file).await?).map_err(|e| JwksError::Read {
            path: file.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
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
