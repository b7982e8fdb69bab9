//! Where this workload's SVID (certificate, key) and trust bundle come from.
//!
//! [`IdentitySource`] is the interface the proxy drives: `refresh` is called at start-up,
//! on every reload tick and on SIGHUP, and publishes a new identity to the [`CertStore`] only
//! when one is available and valid. [`files::FilesSource`] reads PEM files;
//! [`ca::CaSource`] enrolls with and renews from `ward-ca` (through [`ca_client`]) and
//! follows its bundle, allowed issuers and revocations. Failures are [`IdentityError`]s that
//! keep their cause.

pub(crate) mod app;
pub(crate) mod ca;
pub(crate) mod ca_client;
pub(crate) mod files;
mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::SourceMetrics;
use ward_identity::TrustDomain;
use ward_tls::{CertStore, Identity, PemError, StoreError, TrustBundles};

use self::ca::CaSource;
use self::ca_client::CaClient;
use self::files::FilesSource;
use crate::config::IdentityConfig;

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

/// A source of the workload identity.
#[derive(Debug)]
pub(crate) enum IdentitySource {
    /// PEM files on disk, re-read when their content changes.
    Files(FilesSource),
    /// A ward CA: enroll, renew, follow its bundle.
    Ca {
        /// The enrollment state machine.
        source: Box<CaSource>,
        /// Roots that authenticate the CA before its bundle has been fetched.
        bootstrap: PathBuf,
        /// The trust domain.
        trust_domain: TrustDomain,
    },
}

impl IdentitySource {
    /// The source a config describes; a CA source keeps `metrics` (CA reachability, bundle
    /// refreshes, renewals) up to date.
    pub fn from_config(
        config: &IdentityConfig,
        trust_domain: &TrustDomain,
        metrics: SourceMetrics,
    ) -> Self {
        match config {
            IdentityConfig::Files { cert, key, bundle } => Self::Files(FilesSource::new(
                cert.clone(),
                key.clone(),
                bundle.clone(),
                trust_domain.clone(),
            )),
            IdentityConfig::Ca {
                urls,
                bundle,
                token_file,
                server_id,
            } => Self::Ca {
                source: Box::new(CaSource::new(
                    CaClient::new(
                        urls.clone(),
                        server_id.clone(),
                        metrics.ca_unreachable_since.clone(),
                    ),
                    token_file.clone(),
                    trust_domain.clone(),
                    metrics,
                )),
                bootstrap: bundle.clone(),
                trust_domain: trust_domain.clone(),
            },
        }
    }

    /// The CA client, for a CA source (the Workload API asks the same CA for the app).
    pub fn ca_client(&self) -> Option<CaClient> {
        match self {
            Self::Ca { source, .. } => Some(source.client().clone()),
            Self::Files(_) => None,
        }
    }

    /// Whether a failure at start-up should stop the proxy. Files must be right at once; a CA
    /// may be briefly unreachable, so the proxy starts unready and keeps trying.
    pub fn required_at_start(&self) -> bool {
        matches!(self, Self::Files(_))
    }

    /// Publishes a new identity if one is available. `Ok(None)`: nothing changed. `force`
    /// re-reads even if nothing seems to have changed (SIGHUP).
    pub async fn refresh(
        &mut self,
        store: &CertStore,
        force: bool,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        match self {
            Self::Files(files) => files.refresh(store, force).await,
            Self::Ca {
                source,
                bootstrap,
                trust_domain,
            } => {
                if store
                    .bundles()
                    .current()
                    .anchors(trust_domain.as_str())
                    .is_none()
                {
                    let path = bootstrap.clone();
                    let roots =
                        off_workers(bootstrap, move || Ok(ward_tls::pem::load_certs(&path)?))
                            .await?;
                    let bundles = TrustBundles::single(trust_domain.clone(), roots)?;
                    store.bundles().replace(bundles);
                }
                source.refresh(store, force).await
            }
        }
    }
}
