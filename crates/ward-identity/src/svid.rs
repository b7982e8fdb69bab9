//! The X509-SVID leaf profile check, run on every peer certificate before anything trusts it.
//!
//! Chain validation (webpki) proves who signed a certificate; this proves the certificate is
//! shaped like a workload SVID. webpki skips URI SANs that are not UTF-8 and does not read
//! keyUsage bits, so both are done here by hand: the SAN extension is walked as raw DER and
//! every URI entry is counted, whatever its bytes, and keyUsage is read and judged.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use crate::der;
use crate::error::ProfileError;
use crate::spiffe_id::SpiffeId;

/// The facts ward needs from a leaf that passed the profile check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvidLeaf {
    /// The one SPIFFE ID in the URI SAN.
    pub id: SpiffeId,
    /// Serial number as lower-case hex of its big-endian bytes (no leading zero byte).
    pub serial_hex: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// How far ward-ca backdates a leaf's notBefore (for clocks behind the CA's): a leaf was
/// issued at its notBefore plus this.
pub const NOT_BEFORE_BACKDATE_SECS: i64 = 30;

impl SvidLeaf {
    /// When ward-ca issued this leaf, Unix seconds (notBefore undone of the backdate). An ID
    /// revocation covers what was issued up to its time, so a certificate issued after it is
    /// not born revoked just because its notBefore is backdated.
    pub fn issued_at(&self) -> i64 {
        self.not_before.saturating_add(NOT_BEFORE_BACKDATE_SECS)
    }
}

/// The X509-SVID leaf rules ward enforces on every workload certificate.
#[derive(Clone, Copy, Debug, Default)]
pub struct SvidProfile;

impl SvidProfile {
    /// Checks a DER leaf certificate against the SVID profile and returns its facts.
    ///
    /// Rules: X.509 v3 with no repeated extension; exactly one URI SAN (raw entries counted)
    /// holding a SPIFFE ID with a non-empty path; basicConstraints present with CA:FALSE;
    /// keyUsage present, critical, with digitalSignature and without keyCertSign/cRLSign;
    /// extendedKeyUsage, if present, with both serverAuth and clientAuth.
    pub fn check(der: &[u8]) -> Result<SvidLeaf, ProfileError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| ProfileError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ProfileError::Malformed(
                "trailing bytes after the certificate".into(),
            ));
        }
        if cert.version() != X509Version::V3 {
            return Err(ProfileError::NotV3);
        }
        cert.extensions_map()
            .map_err(|_| ProfileError::DuplicateExtension)?;

        let id = uri_san(&cert)?;
        if !id.is_workload() {
            return Err(ProfileError::NotWorkloadId(id.to_string()));
        }

        let bc = cert
            .basic_constraints()
            .map_err(|e| ProfileError::Malformed(e.to_string()))?
            .ok_or(ProfileError::MissingBasicConstraints)?;
        if bc.value.ca {
            return Err(ProfileError::CaLeaf);
        }

        let ku = cert
            .key_usage()
            .map_err(|e| ProfileError::Malformed(e.to_string()))?
            .ok_or(ProfileError::MissingKeyUsage)?;
        if !ku.critical {
            return Err(ProfileError::KeyUsageNotCritical);
        }
        if ku.value.key_cert_sign() || ku.value.crl_sign() {
            return Err(ProfileError::CaKeyUsage);
        }
        if !ku.value.digital_signature() {
            return Err(ProfileError::NoDigitalSignature);
        }

        if let Some(eku) = cert
            .extended_key_usage()
            .map_err(|e| ProfileError::Malformed(e.to_string()))?
        {
            let missing = match (eku.value.server_auth, eku.value.client_auth) {
                (true, true) => None,
                (false, true) => Some("serverAuth"),
                (true, false) => Some("clientAuth"),
                (false, false) => Some("serverAuth and clientAuth"),
            };
            if let Some(missing) = missing {
                return Err(ProfileError::ExtendedKeyUsage { missing });
            }
        }

        let validity = cert.validity();
        Ok(SvidLeaf {
            id,
            serial_hex: serial_hex(cert.raw_serial()),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }
}

/// Finds the single URI SAN by walking the raw extension, so a URI entry that is not UTF-8
/// (which parsers may drop or mark invalid) still counts toward "exactly one".
fn uri_san(cert: &X509Certificate<'_>) -> Result<SpiffeId, ProfileError> {
    let Some(ext) = cert
        .get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME)
        .map_err(|_| ProfileError::DuplicateExtension)?
    else {
        return Err(ProfileError::NoUriSan);
    };
    let names = der::sequence_items(ext.value)
        .map_err(|e| ProfileError::Malformed(format!("subjectAltName: {e}")))?;
    let uris: Vec<&[u8]> = names
        .iter()
        .filter(|tlv| tlv.is_context(6))
        .map(|tlv| tlv.value)
        .collect();
    match uris.as_slice() {
        [] => Err(ProfileError::NoUriSan),
        [one] => Ok(SpiffeId::parse_bytes(one)?),
        many => Err(ProfileError::MultipleUriSans { count: many.len() }),
    }
}

/// The current time in Unix seconds, the unit of [`SvidLeaf`]'s validity (0 if the clock is
/// before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Hex of a DER INTEGER's content bytes, without the sign-padding zero.
pub fn serial_hex(raw: &[u8]) -> String {
    let trimmed = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(trimmed.len() * 2);
    for b in trimmed {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}
