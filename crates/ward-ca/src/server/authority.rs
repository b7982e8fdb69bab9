//! The CA material the daemon signs and publishes with, and its reload when the CA directory
//! changes (`ward-ca rotate`, or `init --force`).
//!
//! The directory is checked every second. A change is loaded whole and validated (the issuer
//! key matches, the root signed the issuer, every root in `bundle.pem` is a CA certificate of
//! this trust domain, the signing root is among them) before it replaces the current
//! material. The issuers of the generations on disk (signing, next, previous) are the only
//! ones allowed to sign leaves, at the CA's own TLS and in the bundle it publishes; a directory that fails any check, or one caught in the middle of an activation,
//! changes nothing. When the issuer changes, the daemon's own serving certificate is
//! re-issued under it at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use ward_identity::TrustDomain;
use ward_tls::files::{ContentDigest, ContentWatch};
use ward_tls::pem::{certs_to_pem, load_certs};
use ward_tls::{PemError, SpkiHash, TrustBundles};

use super::CaService;
use crate::authority::error::CaError;
use crate::authority::issuer::{ca_trust_domain, Issuer};
use crate::authority::jwt_key::JwtKey;
use crate::authority::material::CaMaterial;
use crate::keys::dir::read_optional_key;
use crate::keys::dir::rotation::{
    bundle_issuers, IssuerRole, Journal, Phase, JOURNAL, NEXT, PREVIOUS,
};
use crate::keys::dir::{BUNDLE, ISSUER_CERT, JWT_KEY, ROOT_CERT};

/// An issuer the bundle allows to sign leaves.
#[derive(Clone, Debug)]
pub struct AllowedIssuer {
    /// Its generation.
    pub role: IssuerRole,
    /// Its key hash, as verifiers compare it.
    pub spki: SpkiHash,
    /// Its serial (hex), as `ward-ca certs list` and the state name it.
    pub serial: String,
}

/// How often the CA directory is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// One consistent generation of CA material.
#[derive(Debug)]
pub struct Authority {
    /// The signer.
    pub issuer: Issuer,
    /// Every root workloads must trust (the signing root first).
    pub roots: Vec<CertificateDer<'static>>,
    /// The roots as PEM.
    pub bundle_pem: String,
    /// The roots as SPIFFE bundle JWKs (computed once here, not per `/v1/bundle` rebuild).
    pub jwks: Vec<ward_api::Jwk>,
    /// The issuers allowed to sign leaves (the signing one first).
    pub issuers: Vec<AllowedIssuer>,
    /// Moves whenever the bundle changes (from `rotation.json`).
    pub bundle_version: u64,
    /// The JWT-SVID keys of the generations that have one, the signing generation's first.
    pub jwt_keys: Vec<(IssuerRole, JwtKey)>,
}

impl Authority {
    /// Loads and cross-checks the CA directory.
    pub fn load(dir: &Path, trust_domain: &TrustDomain) -> Result<Self, CaError> {
        let issuer = Issuer::load(dir)?;
        let roots = load_certs(&dir.join(BUNDLE))?;
        let journal = Journal::load(dir)?;
        let mut jwt_keys = Vec::new();
        for (role, sub) in [
            (IssuerRole::Signing, dir.to_path_buf()),
            (IssuerRole::Next, dir.join(NEXT)),
            (IssuerRole::Previous, dir.join(PREVIOUS)),
        ] {
            let path = sub.join(JWT_KEY);
            if let Some(pem) = read_optional_key(&path)? {
                jwt_keys.push((role, JwtKey::from_pem(&pem, &path)?));
            }
        }
        let mut authority = Self::assemble(
            issuer,
            roots,
            bundle_issuers(dir)?,
            journal.bundle_version,
            trust_domain,
            dir,
        )?;
        authority.jwt_keys = jwt_keys;
        Ok(authority)
    }

    /// The material of a CA held in the database; `origin` names it in errors.
    pub fn from_material(
        material: &CaMaterial,
        trust_domain: &TrustDomain,
        origin: &Path,
    ) -> Result<Self, CaError> {
        let issuer = Issuer::from_generation(origin, &material.signing)?;
        for (role, g) in material.generations() {
            if role != IssuerRole::Signing {
                Issuer::from_generation(&origin.join(role.as_str()), g)?;
            }
        }
        let mut jwt_keys = Vec::new();
        for (role, g) in material.generations() {
            if let Some(pem) = &g.jwt_key_pem {
                let path = origin.join(role.as_str()).join(JWT_KEY);
                jwt_keys.push((role, JwtKey::from_pem(pem, &path)?));
            }
        }
        let mut authority = Self::assemble(
            issuer,
            material.roots()?,
            material.issuers()?,
            material.journal.bundle_version,
            trust_domain,
            origin,
        )?;
        authority.jwt_keys = jwt_keys;
        Ok(authority)
    }

    /// Checks the published roots (CA certificates of this trust domain, the signing root
    /// among them) and derives what verifiers compare.
    fn assemble(
        issuer: Issuer,
        roots: Vec<CertificateDer<'static>>,
        allowed: Vec<(IssuerRole, CertificateDer<'static>)>,
        bundle_version: u64,
        trust_domain: &TrustDomain,
        origin: &Path,
    ) -> Result<Self, CaError> {
        let bad = |path: &Path, problem: String| CaError::BadCa {
            path: path.to_path_buf(),
            problem,
        };
        if issuer.trust_domain() != trust_domain {
            return Err(bad(
                origin,
                format!(
                    "is a CA for {}, but the config says trust_domain {trust_domain}",
                    issuer.trust_domain()
                ),
            ));
        }
        let bundle = origin.join(BUNDLE);
        for root in &roots {
            let (_, cert) = x509_parser::parse_x509_certificate(root)
                .map_err(|e| bad(&bundle, format!("malformed certificate: {e}")))?;
            let td = ca_trust_domain(&cert, &bundle)?;
            if !cert.is_ca() || &td != trust_domain {
                return Err(bad(
                    &bundle,
                    format!(
                        "{} is not a CA certificate of {trust_domain}",
                        cert.subject()
                    ),
                ));
            }
        }
        if !roots.contains(issuer.root()) {
            return Err(bad(
                &bundle,
                format!("does not contain {ROOT_CERT}, the root that signs; workloads would refuse every new certificate"),
            ));
        }
        let mut issuers = Vec::new();
        for (role, der) in allowed {
            let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
                bad(
                    origin,
                    format!("{} issuer: malformed certificate: {e}", role.as_str()),
                )
            })?;
            issuers.push(AllowedIssuer {
                role,
                spki: SpkiHash::of_cert(&der)?,
                serial: ward_identity::serial_hex(cert.raw_serial()),
            });
        }
        Ok(Self {
            issuers,
            issuer,
            bundle_pem: certs_to_pem(&roots),
            jwks: roots
                .iter()
                .map(|root| super::bundle::jwk(root, &bundle))
                .collect::<Result<_, _>>()?,
            roots,
            bundle_version,
            jwt_keys: Vec::new(),
        })
    }
}

impl Authority {
    /// What the CA's own TLS verifies clients with: the roots, and only the allowed issuers
    /// under them (so a leaf signed by a retired issuer cannot even reach `/v1/renew`).
    pub fn trust_bundles(&self, td: &TrustDomain) -> Result<TrustBundles, PemError> {
        let mut bundles = TrustBundles::single(td.clone(), self.roots.clone())?;
        bundles.restrict_issuers(td, self.issuers.iter().map(|i| i.spki).collect())?;
        Ok(bundles)
    }

    /// The key that signs JWT-SVIDs now: the signing generation's (none in a generation made
    /// before JWT-SVIDs; rotate to get one).
    pub fn jwt_signer(&self) -> Option<&JwtKey> {
        self.jwt_keys
            .iter()
            .find(|(role, _)| *role == IssuerRole::Signing)
            .map(|(_, key)| key)
    }

    /// Every JWT-SVID key relying parties must accept: signing, next and previous.
    pub fn jwt_jwks(&self) -> Vec<ward_api::Jwk> {
        self.jwt_keys.iter().map(|(_, key)| key.jwk()).collect()
    }

    /// The algorithms of the published JWT-SVID keys, each once (ES256 when there are none).
    pub fn jwt_algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = self
            .jwt_keys
            .iter()
            .map(|(_, key)| key.algorithm().as_str())
            .collect();
        algs.sort_unstable();
        algs.dedup();
        if algs.is_empty() {
            algs.push("ES256");
        }
        algs
    }

    /// The allowed issuers as published in `/v1/bundle` and enrollment answers.
    pub fn allowed_issuers(&self) -> Vec<ward_api::AllowedIssuer> {
        self.issuers
            .iter()
            .map(|i| ward_api::AllowedIssuer {
                role: i.role,
                spki_sha256: i.spki.to_hex(),
                serial: i.serial.clone(),
            })
            .collect()
    }
}

/// A digest of the certificates, bundle and journal [`Authority::load`] reads, or `None`
/// while an activation is under way (the top-level files are then being replaced one by one).
fn fingerprint(dir: &Path) -> Option<ContentDigest> {
    let journal = std::fs::read(dir.join(JOURNAL)).unwrap_or_default();
    if serde_json::from_slice::<Journal>(&journal).is_ok_and(|j| j.phase == Phase::Activating) {
        return None;
    }
    // Not the keys: a new key always comes with a new certificate (one without the other
    // fails the load), so the private key file is read only when something changed.
    let [root, issuer, bundle] = [ROOT_CERT, ISSUER_CERT, BUNDLE]
        .map(|name| std::fs::read(dir.join(name)).unwrap_or_default());
    Some(ContentDigest::of(&[&journal, &root, &issuer, &bundle]))
}

/// Installs `authority`: new signer, new bundle for `/v1/bundle`, for enrollment answers and
/// for the CA's own TLS (clients with certificates under any published root are accepted).
pub(super) fn install(service: &CaService, authority: Authority) -> Result<bool, CaError> {
    let bundles = authority.trust_bundles(&service.config.trust_domain)?;
    service
        .metrics
        .issuer_expiry
        .set(authority.issuer.not_after().unix_timestamp());
    let new_issuer = service.authority().issuer.issuer_serial() != authority.issuer.issuer_serial();
    tracing::info!(
        issuer_serial = authority.issuer.issuer_serial(),
        roots = authority.roots.len(),
        bundle_version = authority.bundle_version,
        "CA material loaded"
    );
    if let Ok(mut guard) = service.authority.write() {
        *guard = Arc::new(authority);
    }
    service.store.bundles().replace(bundles);
    Ok(new_issuer)
}

/// Watches the CA directory and installs what changes in it.
pub(super) async fn watch(service: Arc<CaService>, dir: std::path::PathBuf) {
    let mut watch = fingerprint(&dir).map_or_else(ContentWatch::default, ContentWatch::seen);
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        // File reads run off the async workers: a slow disk must not stall requests.
        let probe = dir.clone();
        let Ok(Some(now)) = tokio::task::spawn_blocking(move || fingerprint(&probe)).await else {
            continue;
        };
        if !watch.changed(now) {
            continue;
        }
        let (load_dir, td) = (dir.clone(), service.config.trust_domain.clone());
        let loaded = tokio::task::spawn_blocking(move || Authority::load(&load_dir, &td))
            .await
            .unwrap_or_else(|e| {
                Err(CaError::BadCa {
                    path: dir.clone(),
                    problem: format!("loading stopped: {e}"),
                })
            });
        let result = loaded.and_then(|authority| install(&service, authority));
        match result {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = super::issue_own_identity(&service).await {
                    tracing::error!(error = %e, "re-issuing the CA's own certificate under the new issuer failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "CA directory changed but cannot be used; still signing with the previous material");
            }
        }
    }
}
