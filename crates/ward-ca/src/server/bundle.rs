//! The `/v1/bundle` document: roots as PEM and as a SPIFFE bundle (JWKS with
//! `spiffe_sequence` and `spiffe_refresh_hint`), plus the revocation list, with an ETag.
//!
//! The document is rebuilt at most once a second; its sequence is the revocation list's
//! generation, so it moves whenever anything proxies must act on changes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use ward_identity::TrustDomain;

use crate::state::queries;
use crate::state::{ReadPool, StateError};

/// Seconds proxies should wait between refreshes; also the revocation propagation bound.
pub const REFRESH_HINT_SECS: u64 = 30;
const CACHE_FOR: Duration = Duration::from_secs(1);

/// A rendered bundle document.
#[derive(Clone, Debug)]
pub struct BundleDoc {
    /// JSON body.
    pub body: Bytes,
    /// Strong ETag (quoted).
    pub etag: String,
}

/// Builds and caches the bundle document.
#[derive(Debug)]
pub struct BundleCache {
    trust_domain: String,
    pem: String,
    keys: Vec<serde_json::Value>,
    cached: Mutex<Option<(Instant, BundleDoc)>>,
}

fn jwk(der: &CertificateDer<'_>) -> Result<serde_json::Value, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("root certificate: {e}"))?;
    let point = &cert.public_key().subject_public_key.data;
    if point.len() != 65 || point[0] != 4 {
        return Err("root key is not an uncompressed P-256 point".into());
    }
    Ok(json!({
        "use": "x509-svid",
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "x5c": [STANDARD.encode(der.as_ref())],
    }))
}

impl BundleCache {
    /// A cache for these roots.
    pub fn new(td: &TrustDomain, roots: &[CertificateDer<'static>]) -> Result<Self, String> {
        Ok(Self {
            trust_domain: td.to_string(),
            pem: ward_tls::pem::certs_to_pem(roots),
            keys: roots.iter().map(jwk).collect::<Result<_, _>>()?,
            cached: Mutex::new(None),
        })
    }

    /// The current document.
    pub fn get(&self, reads: &ReadPool) -> Result<BundleDoc, StateError> {
        if let Ok(guard) = self.cached.lock() {
            if let Some((at, doc)) = guard.as_ref() {
                if at.elapsed() < CACHE_FOR {
                    return Ok(doc.clone());
                }
            }
        }
        let (revoked, generation) =
            reads.read(|c| Ok((queries::revocations(c)?, queries::revocation_generation(c)?)))?;
        let revocations: Vec<_> = revoked
            .iter()
            .map(|r| json!({"spiffe_id": r.spiffe_id, "serial": r.serial, "reason": r.reason, "revoked_at": r.revoked_at}))
            .collect();
        let body = json!({
            "trust_domain": self.trust_domain,
            "bundle_pem": self.pem,
            "spiffe_bundle": {
                "keys": self.keys,
                "spiffe_sequence": generation + 1,
                "spiffe_refresh_hint": REFRESH_HINT_SECS,
            },
            "revocations": revocations,
        })
        .to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let etag = format!(
            "\"{}\"",
            digest.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let doc = BundleDoc {
            body: Bytes::from(body),
            etag,
        };
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), doc.clone()));
        }
        Ok(doc)
    }
}
