//! Certificate signing requests: the only thing taken from one is its public key.
//!
//! The CSR must parse completely, its self-signature must verify (proof that the requester
//! holds the private key), and the key must be ECDSA P-256. Its subject, requested extensions
//! and any other attribute are ignored: names and extensions come from the CA's profile.

use rcgen::{PublicKeyData, SubjectPublicKeyInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::authority::error::CsrError;

/// Largest CSR accepted, PEM or DER. Real P-256 CSRs are under 1 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// The verified public key of a CSR, ready to be certified.
#[derive(Debug)]
pub struct CsrPublicKey(SubjectPublicKeyInfo);

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm()
    }
}

/// Decodes a CSR given as PEM text or raw DER.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::Malformed(format!(
            "{} bytes; the limit is {MAX_CSR_BYTES}",
            input.len()
        )));
    }
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    CertificateSigningRequestDer::from_pem_slice(input)
        .map(|der| der.as_ref().to_vec())
        .map_err(|e| {
            CsrError::Malformed(format!(
                "not DER and no CERTIFICATE REQUEST PEM block ({e})"
            ))
        })
}

/// Parses and verifies a DER CSR and returns only its public key.
pub fn public_key(der: &[u8]) -> Result<CsrPublicKey, CsrError> {
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed("trailing bytes after the CSR".into()));
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let spki_der = csr.certification_request_info.subject_pki.raw;
    let spki = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| CsrError::UnsupportedKey(e.to_string()))?;
    if spki.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(CsrError::UnsupportedKey(format!(
            "got {:?}",
            spki.algorithm()
        )));
    }
    Ok(CsrPublicKey(spki))
}
