//! Identity sources: where this workload's certificate, key and trust bundle come from.
//!
//! [`IdentitySource`] is the interface the proxy drives: `refresh` is called at start-up,
//! on every reload tick and on SIGHUP, and publishes a new identity to the [`CertStore`] only
//! when one is available and valid. [`FilesSource`] reads PEM files;
//! [`CaSource`] enrolls with and renews from `ward-ca` and follows its bundle and revocations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ward_identity::TrustDomain;
use ward_tls::pem::{certs_from_pem, key_from_pem};
use ward_tls::{CertStore, Identity, TrustBundles};

use crate::ca_client::CaClient;
use crate::ca_source::CaSource;
use crate::config::IdentityConfig;
use crate::policy_store::sha256_hex;

/// A source of the workload identity.
#[derive(Debug)]
pub enum IdentitySource {
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
    /// The source a config describes.
    pub fn from_config(config: &IdentityConfig, trust_domain: &TrustDomain) -> Self {
        match config {
            IdentityConfig::Files { cert, key, bundle } => Self::Files(FilesSource {
                cert: cert.clone(),
                key: key.clone(),
                bundle: bundle.clone(),
                trust_domain: trust_domain.clone(),
                last_hash: None,
            }),
            IdentityConfig::Ca {
                url,
                bundle,
                token_file,
                server_id,
            } => Self::Ca {
                source: Box::new(CaSource::new(
                    CaClient::new(url.clone(), server_id.clone()),
                    token_file.clone(),
                    trust_domain.clone(),
                )),
                bootstrap: bundle.clone(),
                trust_domain: trust_domain.clone(),
            },
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
    ) -> Result<Option<Arc<Identity>>, String> {
        match self {
            Self::Files(files) => files.refresh(store, force),
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
                    let roots = ward_tls::pem::load_certs(bootstrap).map_err(|e| e.to_string())?;
                    let bundles = TrustBundles::single(trust_domain.clone(), roots)
                        .map_err(|e| e.to_string())?;
                    store.bundles().replace(bundles);
                }
                source.refresh(store, force).await
            }
        }
    }
}

/// Certificate chain, key and bundle read from files.
#[derive(Debug)]
pub struct FilesSource {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    trust_domain: TrustDomain,
    /// Hash of the three files' contents at the last attempt, successful or not, so one bad
    /// version is reported once rather than on every tick.
    last_hash: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

impl FilesSource {
    fn refresh(&mut self, store: &CertStore, force: bool) -> Result<Option<Arc<Identity>>, String> {
        ward_tls::files::check_key_permissions(&self.key).map_err(|e| e.to_string())?;
        let (cert, key, bundle) = (read(&self.cert)?, read(&self.key)?, read(&self.bundle)?);
        let mut all = Vec::with_capacity(cert.len() + key.len() + bundle.len() + 24);
        for part in [&cert, &key, &bundle] {
            all.extend_from_slice(&(part.len() as u64).to_be_bytes());
            all.extend_from_slice(part);
        }
        let hash = sha256_hex(&all);
        if !force && self.last_hash.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        self.last_hash = Some(hash);
        let name = |p: &Path| p.display().to_string();
        let chain = certs_from_pem(&name(&self.cert), &cert).map_err(|e| e.to_string())?;
        let key = key_from_pem(&name(&self.key), &key).map_err(|e| e.to_string())?;
        let roots = certs_from_pem(&name(&self.bundle), &bundle).map_err(|e| e.to_string())?;
        let bundles =
            TrustBundles::single(self.trust_domain.clone(), roots).map_err(|e| e.to_string())?;
        store
            .publish_with_bundles(chain, key, bundles)
            .map(Some)
            .map_err(|e| format!("{}: {e}", name(&self.cert)))
    }
}
