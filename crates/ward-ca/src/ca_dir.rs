//! The CA directory: creating a new root and issuer (`ward-ca init`) and loading them back.
//!
//! Layout: `root.pem`/`root.key` (P-256, 10 years, self-signed), `issuer.pem`/`issuer.key`
//! (P-256, 1 year, CA with pathLen 0, signed by the root) and `bundle.pem` (the roots workloads
//! trust). Keys are written atomically with mode 0600 and refused on load if group or others
//! can read them. Both CA certificates carry the trust domain's own SPIFFE ID as a URI SAN, so
//! the directory describes itself.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};
use ward_identity::TrustDomain;
use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};
use ward_tls::pem::encode_block;

use crate::error::CaError;

/// Root certificate file name.
pub const ROOT_CERT: &str = "root.pem";
/// Root private key file name.
pub const ROOT_KEY: &str = "root.key";
/// Issuer (intermediate) certificate file name.
pub const ISSUER_CERT: &str = "issuer.pem";
/// Issuer private key file name.
pub const ISSUER_KEY: &str = "issuer.key";
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

/// Creates a new CA in `dir` (created 0700 if missing). Refuses to replace an existing CA
/// unless `force`.
pub fn init(dir: &Path, trust_domain: &TrustDomain, force: bool) -> Result<InitSummary, CaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CaError::Io { path, source }
    };
    if !force {
        for name in [ROOT_CERT, ROOT_KEY, ISSUER_CERT, ISSUER_KEY, BUNDLE] {
            let file = dir.join(name);
            if file.exists() {
                return Err(CaError::Exists {
                    dir: dir.to_path_buf(),
                    file,
                });
            }
        }
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;

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
        params.serial_number = Some(crate::issuer::random_serial()?);
        Ok(params)
    };

    // A short random tag makes every CA generation's names distinct, so chains from an old or
    // foreign CA of the same trust domain fail as "unknown issuer" and operators can tell
    // generations apart during rotation.
    let tag = crate::issuer::random_tag()?;
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let root_params = ca_params(
        format!("{trust_domain} root CA {tag}"),
        now + ROOT_LIFETIME,
        BasicConstraints::Unconstrained,
    )?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = rcgen::Issuer::new(root_params, &root_key);

    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut issuer_params = ca_params(
        format!("{trust_domain} issuer {tag}"),
        now + ISSUER_LIFETIME,
        BasicConstraints::Constrained(0),
    )?;
    issuer_params.use_authority_key_identifier_extension = true;
    let issuer_cert = issuer_params.signed_by(&issuer_key, &root_issuer)?;

    // Keys first, certificates next, the bundle last: a crash part-way leaves files that make
    // a rerun without --force stop and say so, never a bundle pointing at a missing key.
    let key_pem = |k: &KeyPair| encode_block("PRIVATE KEY", &k.serialize_der());
    write_atomic(&dir.join(ROOT_KEY), key_pem(&root_key).as_bytes(), KEY_MODE)?;
    write_atomic(
        &dir.join(ISSUER_KEY),
        key_pem(&issuer_key).as_bytes(),
        KEY_MODE,
    )?;
    let root_pem = encode_block("CERTIFICATE", root_cert.der());
    write_atomic(&dir.join(ROOT_CERT), root_pem.as_bytes(), PUBLIC_MODE)?;
    let issuer_pem = encode_block("CERTIFICATE", issuer_cert.der());
    write_atomic(&dir.join(ISSUER_CERT), issuer_pem.as_bytes(), PUBLIC_MODE)?;
    write_atomic(&dir.join(BUNDLE), root_pem.as_bytes(), PUBLIC_MODE)?;

    Ok(InitSummary {
        trust_domain: trust_domain.clone(),
        root_not_after: now + ROOT_LIFETIME,
        issuer_not_after: now + ISSUER_LIFETIME,
        bundle: dir.join(BUNDLE),
    })
}
