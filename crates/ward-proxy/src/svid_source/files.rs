//! The `files` identity source: certificate chain, key and bundle read from PEM files, and
//! re-read when their content changes (a ConfigMap swap, cert-manager, an operator's `cp`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ward_identity::TrustDomain;
use ward_tls::files::{ContentDigest, ContentWatch};
use ward_tls::pem::{certs_from_pem, key_from_pem};
use ward_tls::{CertStore, Identity, TrustBundles};

use super::error::{off_workers, IdentityError};

/// Certificate chain, key and bundle read from files.
#[derive(Debug)]
pub(crate) struct FilesSource {
    cert: PathBuf,
    key: PathBuf,
    bundle: PathBuf,
    trust_domain: TrustDomain,
    /// The three files' contents at the last attempt, successful or not, so one bad version
    /// is reported once rather than on every tick.
    watch: ContentWatch,
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl FilesSource {
    /// A source reading these three files for `trust_domain`.
    pub(crate) fn new(
        cert: PathBuf,
        key: PathBuf,
        bundle: PathBuf,
        trust_domain: TrustDomain,
    ) -> Self {
        Self {
            cert,
            key,
            bundle,
            trust_domain,
            watch: ContentWatch::default(),
        }
    }

    pub(super) async fn refresh(
        &mut self,
        store: &CertStore,
        force: bool,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        let paths = (self.cert.clone(), self.key.clone(), self.bundle.clone());
        let (cert, key, bundle) = off_workers(&self.cert, move || {
            let (cert, key, bundle) = paths;
            ward_tls::files::check_key_permissions(&key)?;
            Ok((read(&cert)?, read(&key)?, read(&bundle)?))
        })
        .await?;
        let changed = self
            .watch
            .changed(ContentDigest::of(&[&cert, &key, &bundle]));
        if !force && !changed {
            return Ok(None);
        }
        let name = |p: &Path| p.display().to_string();
        let chain = certs_from_pem(&name(&self.cert), &cert)?;
        let key = key_from_pem(&name(&self.key), &key)?;
        let roots = certs_from_pem(&name(&self.bundle), &bundle)?;
        let bundles = TrustBundles::single(self.trust_domain.clone(), roots)?;
        store
            .publish_with_bundles(chain, key, bundles)
            .map(Some)
            .map_err(|source| IdentityError::Invalid {
                what: name(&self.cert),
                source,
            })
    }
}
