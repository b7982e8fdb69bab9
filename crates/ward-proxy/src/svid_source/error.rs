//! Why no new identity could be published ([`IdentityError`], keeping its cause), and the one
//! way the sources read files without stalling the async workers ([`off_workers`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ward_tls::{PemError, StoreError};

/// Why no new identity could be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// PEM material (or its file's permissions) is unusable.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The certificate, key and bundle do not make a valid identity.
    #[error("{what}: {source}")]
    Invalid {
        /// Where the material came from (a file, a CA endpoint).
        what: String,
        /// Which check failed.
        source: StoreError,
    },
    /// The CA could not be reached, or its TLS identity was refused.
    #[error(transparent)]
    Unreachable(#[from] ward_https::HttpsError),
    /// The CA answered with a refusal.
    #[error("{path}: HTTP {status}: {detail}")]
    Refused {
        /// The endpoint.
        path: &'static str,
        /// The HTTP status.
        status: u16,
        /// The CA's code, when it sent one.
        code: Option<ward_api::ErrorCode>,
        /// The CA's code and message, or the start of whatever it sent.
        detail: String,
    },
    /// The join token in the token file can never enroll (used, revoked, expired, unknown,
    /// or for a reserved ID); said once per token, then retried slowly and at once when the
    /// file changes.
    #[error("the join token in {file} cannot enroll: {why} ({code}); {fix}", file = file.display())]
    TokenUnusable {
        /// The token file.
        file: PathBuf,
        /// The CA's code.
        code: ward_api::ErrorCode,
        /// What is wrong with the token, in words.
        why: &'static str,
        /// What to do.
        fix: String,
    },
    /// The CA's answer is not the documented document.
    #[error("{path}: unusable answer: {detail}")]
    BadAnswer {
        /// The endpoint.
        path: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A key pair or CSR could not be made.
    #[error("key generation: {0}")]
    KeyGeneration(String),
    /// A failure after which the CA source waits before asking again.
    #[error("{source} (retrying in about {}s)", retry_in.as_secs())]
    Backoff {
        /// The failure.
        source: Box<IdentityError>,
        /// The wait.
        retry_in: Duration,
    },
}

/// Runs `read` (file I/O about `path`) on tokio's blocking pool: a slow or hung file system
/// must not stall the async workers that relay connections.
pub(crate) async fn off_workers<T: Send + 'static>(
    path: &Path,
    read: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
) -> Result<T, IdentityError> {
    tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
        Err(IdentityError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
    })
}
