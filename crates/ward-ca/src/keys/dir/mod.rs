//! The CA directory: creating a new root and issuer (`ward-ca init`) and loading them back.
//!
//! Layout: `root.pem`/`root.key` (P-256, 10 years, self-signed), `issuer.pem`/`issuer.key`
//! (P-256, 1 year, CA with pathLen 0, signed by the root), `jwt.key` (the generation's JWT-SVID
//! key, P-256 or RSA; absent in directories made before JWT-SVIDs) and `bundle.pem` (the roots
//! workloads trust). Keys are written atomically with mode 0600 and refused on load if group or others
//! can read them. Both CA certificates carry the trust domain's own SPIFFE ID as a URI SAN, so
//! the directory describes itself. Rotation (`ward-ca rotate`, see [`crate::keys::dir::rotation`]) adds
//! `next/`, `previous/` and `rotation.json` beside them; the top-level files are always the
//! generation that signs.

pub mod rotation;
pub mod seed;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use ward_identity::TrustDomain;
use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};

use rustls_pki_types::CertificateDer;
use ward_tls::pem::{load_certs, load_private_key};

use ward_api::IssuerRole;
use ward_tls::files::ContentDigest;

use self::rotation::bundle_issuers;
use crate::authority::error::CaError;
use crate::authority::generation::{generate, Generation, GenerationPem};
use crate::authority::issuer::Issuer;
use crate::authority::jwt_key::JwtKey;
use crate::authority::jwt_svid::JwtAlgorithm;
pub use crate::authority::layout::{BUNDLE, ISSUER_CERT, ISSUER_KEY, JWT_KEY, ROOT_CERT, ROOT_KEY};
use crate::authority::layout::{JOURNAL, NEXT, PREVIOUS};
use crate::authority::material::CaMaterial;
use crate::authority::rotation::{Journal, Phase, RotationError};
use crate::authority::Authority;

/// What `init` created.
#[derive(Debug)]
pub struct InitSummary {
    /// The trust domain the CA serves.
    pub trust_domain: TrustDomain,
    /// End of the root's validity.
    pub root_not_after: OffsetDateTime,
    /// End of the issuer's validity.
    pub issuer_not_after: OffsetDateTime,
    /// Path of the trust bundle to hand to workloads.
    pub bundle: PathBuf,
}

/// Writes a generation's four files into `dir`. Keys first, certificates next: a crash
/// part-way leaves files that make a rerun stop and say so, never a certificate without its
/// key.
pub(crate) fn write_generation(dir: &Path, generation: &Generation) -> Result<(), CaError> {
    let pem = &generation.pem;
    if let Some(root_key) = &pem.root_key_pem {
        write_atomic(&dir.join(ROOT_KEY), root_key.as_bytes(), KEY_MODE)?;
    }
    write_atomic(
        &dir.join(ISSUER_KEY),
        pem.issuer_key_pem.as_bytes(),
        KEY_MODE,
    )?;
    if let Some(jwt_key) = &pem.jwt_key_pem {
        write_atomic(&dir.join(JWT_KEY), jwt_key.as_bytes(), KEY_MODE)?;
    }
    write_atomic(&dir.join(ROOT_CERT), pem.root_pem.as_bytes(), PUBLIC_MODE)?;
    write_atomic(
        &dir.join(ISSUER_CERT),
        pem.issuer_pem.as_bytes(),
        PUBLIC_MODE,
    )?;
    Ok(())
}

/// Creates `dir` (mode 0700) if it is missing.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CaError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates a new CA in `dir` (created 0700 if missing). Refuses to replace an existing CA
/// unless `force`, which also abandons any rotation in progress.
pub fn init(dir: &Path, trust_domain: &TrustDomain, force: bool) -> Result<InitSummary, CaError> {
    init_with(dir, trust_domain, force, JwtAlgorithm::default())
}

/// `init` with a JWT-SVID key for `jwt` (what `init --config` asks for).
pub fn init_with(
    dir: &Path,
    trust_domain: &TrustDomain,
    force: bool,
    jwt: JwtAlgorithm,
) -> Result<InitSummary, CaError> {
    if !force {
        for name in [
            ROOT_CERT,
            ROOT_KEY,
            ISSUER_CERT,
            ISSUER_KEY,
            JWT_KEY,
            BUNDLE,
            JOURNAL,
        ] {
            let file = dir.join(name);
            if file.exists() {
                return Err(CaError::Exists {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
    }
    create_dir(dir)?;
    let generation = generate(trust_domain, None, jwt)?;
    write_generation(dir, &generation)?;
    rotation::reset(dir)?;
    Ok(InitSummary {
        trust_domain: trust_domain.clone(),
        root_not_after: generation.root_not_after,
        issuer_not_after: generation.issuer_not_after,
        bundle: dir.join(BUNDLE),
    })
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_key(path: &Path) -> Result<String, CaError> {
    ward_tls::files::check_key_permissions(path)?;
    read(path)
}

/// A key file that a generation may lack (a root kept offline, a generation made before
/// JWT-SVIDs), checked as every key file is when it is there.
pub(crate) fn read_optional_key(path: &Path) -> Result<Option<String>, CaError> {
    path.exists().then(|| read_key(path)).transpose()
}

impl GenerationPem {
    /// Reads the generation whose files are in `dir` (checked as [`crate::Issuer::load`]
    /// checks them).
    pub fn read(dir: &Path) -> Result<Self, CaError> {
        Issuer::load(dir)?;
        Ok(Self {
            root_pem: read(&dir.join(ROOT_CERT))?,
            root_key_pem: read_optional_key(&dir.join(ROOT_KEY))?,
            issuer_pem: read(&dir.join(ISSUER_CERT))?,
            issuer_key_pem: read_key(&dir.join(ISSUER_KEY))?,
            jwt_key_pem: read_optional_key(&dir.join(JWT_KEY))?,
        })
    }
}

impl CaMaterial {
    /// Reads a CA directory whole: the generations on disk and the journal. Refuses one in
    /// the middle of an activation (rerun `ward-ca rotate activate` there first).
    pub fn read_dir(dir: &Path) -> Result<Self, CaError> {
        let journal = Journal::load(dir)?;
        if journal.phase == Phase::Activating {
            return Err(RotationError::OutOfOrder {
                phase: journal.phase,
                wanted: "be copied",
            }
            .into());
        }
        let optional = |sub: &str| -> Result<Option<GenerationPem>, CaError> {
            let path = dir.join(sub);
            path.exists()
                .then(|| GenerationPem::read(&path))
                .transpose()
        };
        Ok(Self {
            signing: GenerationPem::read(dir)?,
            next: optional(NEXT)?,
            previous: optional(PREVIOUS)?,
            journal,
        })
    }
}

impl Issuer {
    /// Loads the CA in `dir`, checking that the issuer key matches its certificate, that the
    /// root signed the issuer, and that both name the same trust domain.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        if !dir.join(ROOT_CERT).exists() {
            return Err(CaError::BadCa {
                path: dir.to_path_buf(),
                problem: format!(
                    "no CA here ({ROOT_CERT} is missing); create one with `ward-ca init`"
                ),
            });
        }
        let root_der = single_cert(&dir.join(ROOT_CERT))?;
        let issuer_der = single_cert(&dir.join(ISSUER_CERT))?;
        let key_der = load_private_key(&dir.join(ISSUER_KEY))?;
        Self::from_der(dir, root_der, issuer_der, &key_der)
    }
}

fn single_cert(path: &Path) -> Result<CertificateDer<'static>, CaError> {
    let mut certs = load_certs(path)?;
    if certs.len() != 1 {
        return Err(CaError::BadCa {
            path: path.to_path_buf(),
            problem: format!("expected exactly one certificate, found {}", certs.len()),
        });
    }
    Ok(certs.remove(0))
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
}

/// A digest of the certificates, bundle and journal [`Authority::load`] reads, or `None`
/// while an activation is under way (the top-level files are then being replaced one by one).
pub(crate) fn fingerprint(dir: &Path) -> Option<ContentDigest> {
    let journal = fs::read(dir.join(JOURNAL)).unwrap_or_default();
    if serde_json::from_slice::<Journal>(&journal).is_ok_and(|j| j.phase == Phase::Activating) {
        return None;
    }
    // Not the keys: a new key always comes with a new certificate (one without the other
    // fails the load), so the private key file is read only when something changed.
    let [root, issuer, bundle] =
        [ROOT_CERT, ISSUER_CERT, BUNDLE].map(|name| fs::read(dir.join(name)).unwrap_or_default());
    Some(ContentDigest::of(&[&journal, &root, &issuer, &bundle]))
}
