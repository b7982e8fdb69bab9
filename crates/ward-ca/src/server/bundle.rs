//! The `/v1/bundle` document: roots as PEM and as a SPIFFE bundle (JWKS with
//! `spiffe_sequence` and `spiffe_refresh_hint`), plus the revocation list, with an ETag.
//!
//! The document is rebuilt at most once a second, and at once when the roots change (their
//! JWKs come ready-made with the [`super::authority::Authority`]); its
//! sequence grows with the revocation list and with every change of the roots, so it moves
//! whenever anything proxies must act on changes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use ward_identity::TrustDomain;

use super::authority::Authority;
use crate::state::queries;
use crate::state::{ReadPool, StateError};

const CACHE_FOR: Duration = Duration::from_secs(1);

/// A rendered bundle document.
#[derive(Clone, Debug)]
pub struct BundleDoc {
    /// JSON body.
    pub body: Bytes,
    /// Strong ETag (quoted).
    pub etag: String,
}

/// Builds and caches the bundle document (for a second, and only while the roots stay).
#[derive(Debug, Default)]
pub struct BundleCache {
    cached: Mutex<Option<(Instant, u64, BundleDoc)>>,
}

/// A root as a SPIFFE bundle JWK (P-256 only, as ward's CA directories make).
pub(super) fn jwk(der: &CertificateDer<'_>) -> Result<serde_json::Value, String> {
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
    /// The current document for `authority`'s roots, telling clients to come back after
    /// `refresh_hint`.
    pub fn get(
        &self,
        reads: &ReadPool,
        authority: &Authority,
        trust_domain: &TrustDomain,
        refresh_hint: Duration,
    ) -> Result<BundleDoc, StateError> {
        if let Ok(guard) = self.cached.lock() {
            if let Some((at, version, doc)) = guard.as_ref() {
                if at.elapsed() < CACHE_FOR && *version == authority.bundle_version {
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
        // Both counters only grow, so their sum moves whenever either does.
        let sequence = generation.unsigned_abs() + authority.bundle_version + 1;
        let body = json!({
            "trust_domain": trust_domain.as_str(),
            "bundle_pem": authority.bundle_pem,
            "spiffe_bundle": {
                "keys": authority.jwks,
                "spiffe_sequence": sequence,
                "spiffe_refresh_hint": refresh_hint.as_secs(),
            },
            "issuers": authority.issuers_json(),
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
            *guard = Some((Instant::now(), authority.bundle_version, doc.clone()));
        }
        Ok(doc)
    }
}
