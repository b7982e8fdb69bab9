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

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use ward_identity::TrustDomain;
use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};
use ward_tls::pem::encode_block;

use crate::authority::error::CaError;
use crate::authority::jwt_svid::JwtAlgorithm;
use crate::authority::material::GenerationPem;

/// Root certificate file name.
pub const ROOT_CERT: &str = "root.pem";
/// Root private key file name.
pub const ROOT_KEY: &str = "root.key";
/// Issuer (intermediate) certificate file name.
pub const ISSUER_CERT: &str = "issuer.pem";
/// Issuer private key file name.
pub const ISSUER_KEY: &str = "issuer.key";
/// JWT-SVID signing key file name (P-256; a generation made before JWT-SVIDs has none).
pub const JWT_KEY: &str = "jwt.key";
/// Trust bundle (roots) file name.
pub const BUNDLE: &str = "bundle.pem";

/// Lifetime of a new root.
pub const ROOT_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of a new issuer.
pub const ISSUER_LIFETIME: Duration = Duration::days(365);

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

/// One generation of CA material (root and issuer), generated but not yet written.
pub(crate) struct Generation {
    /// Its certificates and keys.
    pub pem: GenerationPem,
    /// End of the root's validity.
    pub root_not_after: OffsetDateTime,
    /// End of the issuer's validity.
    pub issuer_not_after: OffsetDateTime,
    /// The issuer's subject common name (names the generation in messages).
    pub issuer_name: String,
    /// The root's subject common name.
    pub root_name: String,
}

fn key_pem(k: &KeyPair) -> String {
    encode_block("PRIVATE KEY", &k.serialize_der())
}

/// A new issuer for `trust_domain`, under a new root, or under `root` (certificate and key
/// PEM of the current root) when given.
pub(crate) fn generate(
    trust_domain: &TrustDomain,
    root: Option<(&CertificateDer<'static>, &str)>,
    jwt: JwtAlgorithm,
) -> Result<Generation, CaError> {
    let now = OffsetDateTime::now_utc();
    let td_id = trust_domain.id();
    let ca_params = |cn: String, not_after: OffsetDateTime, constraint| -> Result<_, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "ward");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(td_id.as_str().try_into()?)];
        params.is_ca = IsCa::Ca(constraint);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::seconds(30);
        params.not_after = not_after;
        params.serial_number = Some(crate::authority::issuer::random_serial()?);
        Ok(params)
    };

    // A short random tag makes every CA generation's names distinct, so chains from an old or
    // foreign CA of the same trust domain fail as "unknown issuer" and operators can tell
    // generations apart during rotation.
    let tag = crate::authority::issuer::random_tag()?;
    let (root_pem, root_key_pem, root_issuer, root_not_after, root_name) = match root {
        None => {
            let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let name = format!("{trust_domain} root CA {tag}");
            let params = ca_params(
                name.clone(),
                now + ROOT_LIFETIME,
                BasicConstraints::Unconstrained,
            )?;
            let cert = params.self_signed(&root_key)?;
            let key = key_pem(&root_key);
            let pem = encode_block("CERTIFICATE", cert.der());
            let not_after = params.not_after;
            (
                pem,
                key,
                rcgen::Issuer::new(params, root_key),
                not_after,
                name,
            )
        }
        Some((der, key_pem_text)) => {
            let key = KeyPair::from_pem(key_pem_text)?;
            let (_, cert) =
                x509_parser::parse_x509_certificate(der).map_err(|e| CaError::BadCa {
                    path: ROOT_CERT.into(),
                    problem: format!("malformed certificate: {e}"),
                })?;
            let not_after = cert.validity().not_after.to_datetime();
            let name = cert.subject().to_string();
            let issuer = rcgen::Issuer::from_ca_cert_der(der, key)?;
            let pem = encode_block("CERTIFICATE", der);
            (pem, key_pem_text.to_owned(), issuer, not_after, name)
        }
    };
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let issuer_name = format!("{trust_domain} issuer {tag}");
    // An issuer never outlives its root.
    let mut issuer_params = ca_params(
        issuer_name.clone(),
        std::cmp::min(now + ISSUER_LIFETIME, root_not_after),
        BasicConstraints::Constrained(0),
    )?;
    issuer_params.use_authority_key_identifier_extension = true;
    let issuer_not_after = issuer_params.not_after;
    let issuer_cert = issuer_params.signed_by(&issuer_key, &root_issuer)?;
    Ok(Generation {
        pem: GenerationPem {
            root_pem,
            root_key_pem: Some(root_key_pem),
            issuer_pem: encode_block("CERTIFICATE", issuer_cert.der()),
            issuer_key_pem: key_pem(&issuer_key),
            jwt_key_pem: Some(crate::authority::jwt_key::generate_pem(jwt)?),
        },
        root_not_after,
        issuer_not_after,
        issuer_name,
        root_name,
    })
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
            rotation::JOURNAL,
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
