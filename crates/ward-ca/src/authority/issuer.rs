//! The issuer: signs workload SVIDs with the intermediate key, to ward's leaf profile only.
//!
//! Profile (docs/ca.md, "Issuance"): empty subject with a critical SAN holding exactly the one SPIFFE ID;
//! basicConstraints critical CA:FALSE; keyUsage critical digitalSignature; extendedKeyUsage
//! serverAuth + clientAuth; subject and authority key identifiers; 128-bit random positive
//! serial; notBefore 30 s in the past; notAfter = min(now + ttl, issuer notAfter). The CSR
//! contributes its verified public key and nothing else.

use std::path::Path;
use std::time::Duration as StdDuration;

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use ward_identity::{SpiffeId, SvidLeaf, SvidProfile, TrustDomain};
use ward_tls::pem::{certs_from_pem, certs_to_pem, key_from_pem};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::authority::csr;
use crate::authority::error::CaError;
use crate::authority::generation::GenerationPem;
use crate::authority::layout::{ISSUER_CERT, ISSUER_KEY, ROOT_CERT};

/// Backdating of notBefore, to tolerate clock skew between CA and workloads.
pub const BACKDATE: Duration = Duration::seconds(ward_identity::NOT_BEFORE_BACKDATE_SECS);
/// Default SVID lifetime.
pub const DEFAULT_TTL: StdDuration = StdDuration::from_secs(3600);
/// Shortest SVID lifetime `ward-ca issue` grants.
pub const MIN_TTL: StdDuration = StdDuration::from_secs(60);
/// Shortest lifetime the issuer grants at all; the daemon may be configured down to it (tests,
/// or deployments that want very short-lived certificates).
pub const ABSOLUTE_MIN_TTL: StdDuration = StdDuration::from_secs(10);
/// Longest SVID lifetime the offline issuer grants.
pub const MAX_TTL: StdDuration = StdDuration::from_secs(24 * 3600);

/// A freshly issued SVID.
#[derive(Debug)]
pub struct IssuedSvid {
    /// Leaf then issuer.
    pub chain: Vec<CertificateDer<'static>>,
    /// Facts of the leaf, read back from the DER through the SVID profile check.
    pub leaf: SvidLeaf,
    /// Serial (hex) of the issuing CA certificate.
    pub issuer_serial: String,
}

impl IssuedSvid {
    /// The chain as PEM, leaf first.
    pub fn chain_pem(&self) -> String {
        certs_to_pem(&self.chain)
    }
}

/// A loaded CA, ready to sign.
pub struct Issuer {
    trust_domain: TrustDomain,
    signer: rcgen::Issuer<'static, KeyPair>,
    issuer_der: CertificateDer<'static>,
    issuer_serial: String,
    root_der: CertificateDer<'static>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .field("key", &"...")
            .finish()
    }
}

impl Issuer {
    /// The issuer of one generation held in memory (decrypted from the database); errors
    /// name `origin` joined with the file name the part would have in a CA directory.
    pub fn from_generation(origin: &Path, g: &GenerationPem) -> Result<Self, CaError> {
        let one = |file: &str, pem: &str| -> Result<CertificateDer<'static>, CaError> {
            let what = origin.join(file).display().to_string();
            let mut certs = certs_from_pem(&what, pem.as_bytes())?;
            if certs.len() != 1 {
                return Err(CaError::BadCa {
                    path: origin.join(file),
                    problem: format!("expected exactly one certificate, found {}", certs.len()),
                });
            }
            Ok(certs.remove(0))
        };
        let key_der = key_from_pem(
            &origin.join(ISSUER_KEY).display().to_string(),
            g.issuer_key_pem.as_bytes(),
        )?;
        Self::from_der(
            origin,
            one(ROOT_CERT, &g.root_pem)?,
            one(ISSUER_CERT, &g.issuer_pem)?,
            &key_der,
        )
    }

    pub(crate) fn from_der(
        dir: &Path,
        root_der: CertificateDer<'static>,
        issuer_der: CertificateDer<'static>,
        key_der: &rustls_pki_types::PrivateKeyDer<'static>,
    ) -> Result<Self, CaError> {
        let bad = |file: &str, problem: String| CaError::BadCa {
            path: dir.join(file),
            problem,
        };
        let key = KeyPair::try_from(key_der)
            .map_err(|e| bad(ISSUER_KEY, format!("unusable private key: {e}")))?;

        let (_, root) = X509Certificate::from_der(&root_der)
            .map_err(|e| bad(ROOT_CERT, format!("malformed certificate: {e}")))?;
        let (_, issuer) = X509Certificate::from_der(&issuer_der)
            .map_err(|e| bad(ISSUER_CERT, format!("malformed certificate: {e}")))?;
        if issuer.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(bad(ISSUER_KEY, "does not match issuer.pem".into()));
        }
        issuer
            .verify_signature(Some(root.public_key()))
            .map_err(|_| bad(ISSUER_CERT, "is not signed by root.pem".into()))?;
        if !issuer.is_ca() {
            return Err(bad(ISSUER_CERT, "is not a CA certificate".into()));
        }
        let td = ca_trust_domain(&issuer, &dir.join(ISSUER_CERT))?;
        if ca_trust_domain(&root, &dir.join(ROOT_CERT))? != td {
            return Err(bad(
                ROOT_CERT,
                "names a different trust domain than issuer.pem".into(),
            ));
        }
        let validity = issuer.validity();
        let (not_before, not_after) = (
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        );
        let signer = rcgen::Issuer::from_ca_cert_der(&issuer_der, key)
            .map_err(|e| bad(ISSUER_CERT, e.to_string()))?;
        Ok(Self {
            trust_domain: td,
            signer,
            issuer_serial: ward_identity::serial_hex(issuer.raw_serial()),
            issuer_der,
            root_der,
            not_before,
            not_after,
        })
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The root certificate (what workloads trust).
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// The issuing (intermediate) certificate.
    pub fn issuer_cert(&self) -> &CertificateDer<'static> {
        &self.issuer_der
    }

    /// Serial (hex) of the issuing certificate: names this generation in the state database.
    pub fn issuer_serial(&self) -> &str {
        &self.issuer_serial
    }

    /// End of the issuing certificate's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Signs the public key of `csr_der` as `id` for `ttl`, as of `now`. `dns_names` adds DNS
    /// SANs beside the one URI SAN, for workloads that clients reach by host name (the CA's
    /// own serving certificate, or an app behind curl); most workloads pass none.
    pub fn issue(
        &self,
        csr_der: &[u8],
        id: &SpiffeId,
        dns_names: &[String],
        ttl: StdDuration,
        now: OffsetDateTime,
    ) -> Result<IssuedSvid, CaError> {
        check_ttl_within(ttl, ABSOLUTE_MIN_TTL, MAX_TTL)?;
        if !id.is_member_of(&self.trust_domain) {
            return Err(CaError::ForeignId {
                id: id.clone(),
                trust_domain: self.trust_domain.to_string(),
            });
        }
        if !id.is_workload() {
            return Err(CaError::NotWorkload(id.clone()));
        }
        if now < self.not_before || now >= self.not_after {
            return Err(CaError::IssuerNotValid {
                not_before: rfc3339(self.not_before),
                not_after: rfc3339(self.not_after),
            });
        }
        let public_key = csr::public_key(csr_der)?;

        let ttl = Duration::try_from(ttl).unwrap_or(Duration::MAX);
        let mut params = leaf_params(id, now - BACKDATE, std::cmp::min(now + ttl, self.not_after))?;
        for name in dns_names {
            let valid =
                !name.contains('*') && rustls_pki_types::DnsName::try_from(name.as_str()).is_ok();
            if !valid {
                return Err(CaError::InvalidDnsName(name.clone()));
            }
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }

        let cert = params.signed_by(&public_key, &self.signer)?;
        let leaf_der = cert.der().clone();
        let leaf = SvidProfile::check(&leaf_der)?;
        Ok(IssuedSvid {
            chain: vec![leaf_der, self.issuer_der.clone()],
            leaf,
            issuer_serial: self.issuer_serial.clone(),
        })
    }
}

/// The leaf profile for `id` with the given validity and a fresh random serial. The issuer
/// uses it for every SVID; tests use it as the known-good shape they break one rule of.
pub fn leaf_params(
    id: &SpiffeId,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

/// Refuses lifetimes outside [`MIN_TTL`]..=[`MAX_TTL`] (the offline `issue` command's range).
pub fn check_ttl(ttl: StdDuration) -> Result<(), CaError> {
    check_ttl_within(ttl, MIN_TTL, MAX_TTL)
}

/// Refuses lifetimes outside `min..=max`.
pub fn check_ttl_within(
    ttl: StdDuration,
    min: StdDuration,
    max: StdDuration,
) -> Result<(), CaError> {
    if ttl < min || ttl > max {
        return Err(CaError::Ttl {
            ttl: ward_yaml::Duration(ttl).to_string(),
            min: ward_yaml::Duration(min).to_string(),
            max: ward_yaml::Duration(max).to_string(),
        });
    }
    Ok(())
}

/// 128 random bits, encoded as a positive INTEGER (rcgen adds a sign byte when needed).
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Generate("no randomness from the system".into()))?;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Eight random hex digits, to tell CA generations apart by name.
pub(crate) fn random_tag() -> Result<String, CaError> {
    let mut bytes = [0u8; 4];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Generate("no randomness from the system".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// RFC 3339 text for messages.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The trust domain named by a CA certificate's `spiffe://<td>` URI SAN; `path` is the file
/// the certificate came from, for the error.
pub(crate) fn ca_trust_domain(
    cert: &X509Certificate<'_>,
    path: &Path,
) -> Result<TrustDomain, CaError> {
    let bad = |problem: String| CaError::BadCa {
        path: path.to_path_buf(),
        problem,
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("has no subjectAltName naming the trust domain".into()))?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    let [uri] = uris.as_slice() else {
        return Err(bad(
            "must have exactly one spiffe://<trust-domain> URI SAN".into()
        ));
    };
    let id = SpiffeId::parse(uri).map_err(|e| bad(format!("URI SAN {uri:?}: {e}")))?;
    if id.is_workload() {
        return Err(bad(format!(
            "URI SAN {uri} is a workload ID, not a trust domain"
        )));
    }
    Ok(id.trust_domain())
}
