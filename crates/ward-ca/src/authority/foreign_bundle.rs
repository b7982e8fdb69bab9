//! A foreign trust domain's SPIFFE bundle, read and judged whole before it is trusted.
//!
//! The document is the JWKS of the SPIFFE Trust Domain and Bundle specification. Accepted
//! only when: it is at most [`MAX_DOCUMENT`] bytes of JSON with a `keys` array; every
//! `x509-svid` key carries exactly one certificate that is a usable trust anchor, and none
//! names another trust domain in a SPIFFE URI SAN (ward's roots name their own); every
//! `jwt-svid` key of a type ward verifies (P-256, P-384, RSA of 2048 bits or more) has a
//! `kid` and well-formed parameters; there is at least one root. Keys of any other `use`, and
//! `jwt-svid` keys of another type or curve (Ed25519, P-521), are ignored and listed in
//! [`ForeignBundle::ignored`], as section 4.1.3 of the specification asks: the rest of the
//! bundle applies. A key ward does understand but finds malformed refuses the whole document:
//! a half-understood bundle is never trusted in part.
//!
//! One exception to "at least one root": a document whose `keys` array is empty says that
//! every key of the trust domain is revoked (section 4.1.3), and its SVIDs must be refused.
//! [`parse`] returns it as a bundle with no keys ([`ForeignBundle::revokes_all`]); the caller
//! decides where that is believed (from an authenticated endpoint) and where not (a
//! `bundle_file`, which must anchor something).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use ward_identity::TrustDomain;
use ward_tls::{JwtAuthority, TrustBundles};

/// The largest bundle document accepted.
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// A foreign bundle that passed every check.
#[derive(Clone, Debug)]
pub struct ForeignBundle {
    /// Its trust domain.
    pub trust_domain: TrustDomain,
    /// Its X.509 roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// Its JWT-SVID keys of the types ward verifies, as they came.
    pub jwt_keys: Vec<ward_api::Jwk>,
    /// The keys left aside as not understood, each as `key N: use kty crv`.
    pub ignored: Vec<String>,
    /// `spiffe_sequence`, if given (the field is optional).
    pub sequence: Option<u64>,
    /// `spiffe_refresh_hint`, seconds, if given.
    pub refresh_hint: Option<u64>,
    /// The document itself.
    pub document: String,
}

fn text<'a>(key: &'a Value, field: &str) -> &'a str {
    key.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The SPIFFE trust domain a root names in a URI SAN, if any.
fn named_domain(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u
            .strip_prefix("spiffe://")
            .map(|rest| rest.split('/').next().unwrap_or("").to_owned()),
        _ => None,
    })
}

/// Why a foreign bundle document is refused (whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Over [`MAX_DOCUMENT`] bytes.
    #[error("the document is {0} bytes, more than {MAX_DOCUMENT}")]
    TooLarge(usize),
    /// Not JSON.
    #[error("not a JSON document: {0}")]
    NotJson(String),
    /// No `keys` array.
    #[error("no `keys` array: not a SPIFFE bundle")]
    NoKeys,
    /// One key is malformed, or names another trust domain.
    #[error("key {index}: {problem}")]
    Key {
        /// Its place in `keys`.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// Keys, but no root among them.
    #[error("no x509-svid root among its keys: a bundle that anchors nothing is never accepted")]
    NoRoot,
    /// A root is not a usable trust anchor.
    #[error("{0}")]
    Unusable(String),
    /// `spiffe_sequence` is lower than the one in force.
    #[error("spiffe_sequence went backwards ({new} after {current})")]
    Backwards {
        /// The document's.
        new: u64,
        /// The one in force.
        current: u64,
    },
}

/// Reads and judges `document` as the bundle of `td`.
pub fn parse(td: &TrustDomain, document: &[u8]) -> Result<ForeignBundle, BundleError> {
    if document.len() > MAX_DOCUMENT {
        return Err(BundleError::TooLarge(document.len()));
    }
    let doc: Value =
        serde_json::from_slice(document).map_err(|e| BundleError::NotJson(e.to_string()))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(BundleError::NoKeys)?;
    let mut roots = Vec::new();
    let mut jwt_keys = Vec::new();
    let mut ignored = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let bad = |problem: String| BundleError::Key { index: i, problem };
        match text(key, "use") {
            "x509-svid" => {
                let x5c = key
                    .get("x5c")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 1)
                    .ok_or_else(|| {
                        bad("an x509-svid key needs exactly one x5c certificate".into())
                    })?;
                let der = x5c[0]
                    .as_str()
                    .and_then(|b| STANDARD.decode(b).ok())
                    .ok_or_else(|| bad("x5c is not base64".into()))?;
                if let Some(named) = named_domain(&der).filter(|n| n != td.as_str()) {
                    return Err(bad(format!(
                        "the root names trust domain {named}, not {td}: a bundle for another trust domain"
                    )));
                }
                roots.push(CertificateDer::from(der));
            }
            "jwt-svid" => {
                let kid = text(key, "kid").to_owned();
                let (kty, crv) = (text(key, "kty"), text(key, "crv"));
                match JwtAuthority::from_jwk(kid, kty, crv, |f| text(key, f)) {
                    Ok(Some(_)) => {
                        let jwk: ward_api::Jwk = serde_json::from_value(key.clone())
                            .map_err(|e| bad(format!("not a JWK: {e}")))?;
                        jwt_keys.push(jwk);
                    }
                    Ok(None) => ignored.push(format!("key {i}: jwt-svid {kty} {crv}")),
                    Err(e) => return Err(bad(e.to_string())),
                }
            }
            other => ignored.push(format!("key {i}: use {other:?}")),
        }
    }
    if roots.is_empty() && !keys.is_empty() {
        return Err(BundleError::NoRoot);
    }
    // Every root must be a usable anchor; this is the check the sidecars will make.
    if !roots.is_empty() {
        TrustBundles::single(td.clone(), roots.clone())
            .map_err(|e| BundleError::Unusable(e.to_string()))?;
    }
    Ok(ForeignBundle {
        trust_domain: td.clone(),
        roots,
        jwt_keys,
        ignored,
        sequence: doc.get("spiffe_sequence").and_then(Value::as_u64),
        refresh_hint: doc.get("spiffe_refresh_hint").and_then(Value::as_u64),
        document: String::from_utf8_lossy(document).into_owned(),
    })
}

impl ForeignBundle {
    /// Whether this is a document with no keys: every key of the trust domain revoked.
    pub fn revokes_all(&self) -> bool {
        self.roots.is_empty() && self.jwt_keys.is_empty()
    }

    /// Whether `self` may replace `current`: `spiffe_sequence` is compared only when both
    /// documents carry one (the field is optional), and may not go backwards.
    pub fn follows(&self, current: &ForeignBundle) -> Result<(), BundleError> {
        match (self.sequence, current.sequence) {
            (Some(new), Some(current)) if new < current => {
                Err(BundleError::Backwards { new, current })
            }
            _ => Ok(()),
        }
    }

    /// As handed to sidecars inside `/v1/bundle`; `None` for a bundle that revokes every key,
    /// so sidecars drop the trust domain and refuse its SVIDs.
    pub fn entry(&self) -> Option<ward_api::FederatedBundle> {
        if self.revokes_all() {
            return None;
        }
        Some(ward_api::FederatedBundle {
            trust_domain: self.trust_domain.to_string(),
            bundle_pem: ward_tls::pem::certs_to_pem(&self.roots),
            jwt_keys: self.jwt_keys.clone(),
            spiffe_sequence: self.sequence.unwrap_or(0),
        })
    }
}

#[cfg(test)]
#[path = "foreign_bundle_tests.rs"]
mod tests;
