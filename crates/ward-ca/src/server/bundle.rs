//! The `/v1/bundle` document: roots as PEM and as a SPIFFE bundle (JWKS with
//! `spiffe_sequence` and `spiffe_refresh_hint`), plus the revocation list, with an ETag.
//!
//! The document is rebuilt at most once a second, and at once when the roots change (their
//! JWKs come ready-made with the [`crate::authority::Authority`]); its
//! sequence grows with the revocation list and with every change of the roots, so it moves
//! whenever anything proxies must act on changes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ward_api::{BundleDocument, SpiffeBundle};

use crate::authority::records::Revocation;
use crate::authority::Authority;
use crate::config::CaConfig;
use crate::server::foreign::Foreign;
use crate::state::{StateError, Store};

const CACHE_FOR: Duration = Duration::from_secs(1);

/// A rendered bundle document.
#[derive(Clone, Debug)]
pub struct RenderedBundle {
    /// JSON body.
    pub body: Bytes,
    /// The SPIFFE bundle alone (what the federation bundle endpoint serves).
    pub spiffe: Bytes,
    /// Strong ETag (quoted).
    pub etag: String,
}

/// Builds and caches the bundle document (for a second, and only while the roots stay).
#[derive(Debug, Default)]
pub struct BundleCache {
    cached: Mutex<Option<Cached>>,
}

/// When a document was rendered, for which (roots version, foreign bundles version), and it.
type Cached = (Instant, (u64, u64), RenderedBundle);

impl BundleCache {
    /// The current document for `authority`'s roots (and JWT-SVID keys, when the CA issues
    /// JWT-SVIDs: published only then, so sidecars too old to parse such keys never see
    /// them), telling clients to come back after `refresh_hint`.
    pub async fn get(
        &self,
        state: &Store,
        authority: &Authority,
        config: &CaConfig,
        refresh_hint: Duration,
        foreign: &Foreign,
    ) -> Result<RenderedBundle, StateError> {
        let trust_domain = &config.trust_domain;
        if let Ok(guard) = self.cached.lock() {
            if let Some((at, cached, doc)) = guard.as_ref() {
                if at.elapsed() < CACHE_FOR
                    && *cached == (authority.bundle_version, foreign.version())
                {
                    return Ok(doc.clone());
                }
            }
        }
        let (foreign_version, foreign) = foreign.snapshot();
        let version = (authority.bundle_version, foreign_version);
        let (revoked, generation) = state.revocations().await?;
        // Both counters only grow, so their sum moves whenever either does.
        let sequence = generation.unsigned_abs() + authority.bundle_version + 1;
        let document = BundleDocument {
            trust_domain: trust_domain.to_string(),
            bundle_pem: authority.bundle_pem.clone(),
            spiffe_bundle: SpiffeBundle {
                keys: if config.jwt_svid.is_some() {
                    authority
                        .jwks
                        .iter()
                        .cloned()
                        .chain(authority.jwt_jwks())
                        .collect()
                } else {
                    authority.jwks.clone()
                },
                spiffe_sequence: sequence,
                spiffe_refresh_hint: refresh_hint.as_secs(),
            },
            issuers: authority.allowed_issuers(),
            revocations: revoked.iter().map(Revocation::entry).collect(),
            federated: foreign.iter().filter_map(|b| b.entry()).collect(),
        };
        let body = serde_json::to_string(&document).unwrap_or_default();
        let spiffe = serde_json::to_string(&document.spiffe_bundle).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let etag = format!(
            "\"{}\"",
            digest.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let doc = RenderedBundle {
            body: Bytes::from(body),
            spiffe: Bytes::from(spiffe),
            etag,
        };
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), version, doc.clone()));
        }
        Ok(doc)
    }
}
