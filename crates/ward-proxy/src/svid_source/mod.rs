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
mod error;
pub(crate) mod files;
mod token;

use self::error::off_workers;
pub use self::error::IdentityError;

use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::SourceMetrics;
use ward_identity::TrustDomain;
use ward_tls::{CertStore, Identity, TrustBundles};

use self::ca::CaSource;
use self::ca_client::CaClient;
use self::files::FilesSource;
use crate::identity_config::IdentityConfig;

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
