//! One generation of a CA, a root and an issuer with their keys (and the generation's JWT-SVID
//! key): made here ([`generate`]), held as PEM ([`GenerationPem`]) wherever it is kept.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use ward_identity::TrustDomain;
use ward_tls::pem::{certs_from_pem, encode_block};

use crate::authority::error::CaError;
use crate::authority::jwt_svid::JwtAlgorithm;
use crate::authority::layout::{ISSUER_CERT, ROOT_CERT};

/// Lifetime of a new root.
pub const ROOT_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of a new issuer.
pub const ISSUER_LIFETIME: Duration = Duration::days(365);

/// One generation's certificates and keys, as PEM.
#[derive(Clone)]
pub struct GenerationPem {
    /// The root certificate.
    pub root_pem: String,
    /// The root's key; `None` for a root kept offline (such a CA cannot rotate its issuer).
    pub root_key_pem: Option<String>,
    /// The issuing certificate.
    pub issuer_pem: String,
    /// The issuer's key.
    pub issuer_key_pem: String,
    /// The JWT-SVID signing key (P-256); `None` in generations made before JWT-SVIDs.
    pub jwt_key_pem: Option<String>,
}

impl std::fmt::Debug for GenerationPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationPem").finish_non_exhaustive()
    }
}

impl GenerationPem {
    fn cert(&self, which: &str, pem: &str) -> Result<CertificateDer<'static>, CaError> {
        Ok(certs_from_pem(which, pem.as_bytes())?.remove(0))
    }

    /// The root certificate.
    pub fn root(&self) -> Result<CertificateDer<'static>, CaError> {
        self.cert(ROOT_CERT, &self.root_pem)
    }

    /// The issuing certificate.
    pub fn issuer(&self) -> Result<CertificateDer<'static>, CaError> {
        self.cert(ISSUER_CERT, &self.issuer_pem)
    }
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
