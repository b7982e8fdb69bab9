//! Trust bundles, kept per trust domain and swapped whole when they change.
//!
//! A peer's chain is validated only against the roots of the peer's own trust domain; bundles
//! of different domains are never merged. [`BundleStore`] is the single-writer, many-reader
//! handle verifiers hold, so a bundle refresh reaches new handshakes without a restart.
//!
//! A bundle may also name the issuing intermediates its CA currently allows to sign leaves
//! ([`SpkiHash`] of each). A root stays trusted for years while the issuers under it rotate,
//! so "chains to a trusted root" alone would keep an issuer retired by an issuer-only rotation
//! (and whoever holds its key) trusted until the root itself goes. When a domain's bundle
//! names its issuers, a leaf must be signed by one of them.

use std::collections::HashMap;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, TrustAnchor};
use tokio::sync::watch;
use ward_identity::{SvidLeaf, TrustDomain};

use crate::error::PemError;
use crate::jwt::JwtAuthority;

/// SHA-256 of a CA certificate's DER SubjectPublicKeyInfo (with its SEQUENCE header): how a
/// bundle names an issuer. It names the key, so it holds whatever certificate carries it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiHash(pub [u8; 32]);

impl SpkiHash {
    /// The hash of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The hash of the public key of a certificate.
    pub fn of_cert(der: &CertificateDer<'_>) -> Result<Self, PemError> {
        let cert = webpki::EndEntityCert::try_from(der).map_err(|e| PemError::Malformed {
            what: "issuer certificate".into(),
            detail: format!("{e:?}"),
        })?;
        Ok(Self::of_spki(cert.subject_public_key_info().as_ref()))
    }

    /// Lower-case hex, as the CA publishes it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl std::fmt::Debug for SpkiHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpkiHash({})", self.to_hex())
    }
}

/// The roots of one trust domain, with webpki anchors derived once, and the issuers allowed
/// to sign leaves under them (`None`: any issuer that chains to a root).
#[derive(Clone, Debug)]
struct Bundle {
    roots: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    issuers: Option<Vec<SpkiHash>>,
}

/// A published revocation: one certificate by serial, or every certificate of an ID issued
/// no later than `revoked_at` (issuance time is notBefore undone of ward-ca's backdate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Revoked ID (for an ID revocation).
    pub spiffe_id: Option<String>,
    /// Revoked serial, lower-case hex (for a serial revocation).
    pub serial: Option<String>,
    /// Unix seconds.
    pub revoked_at: i64,
}

impl Revocation {
    /// True when this revocation covers `leaf`.
    pub fn covers(&self, leaf: &SvidLeaf) -> bool {
        self.serial.as_deref() == Some(leaf.serial_hex.as_str())
            || (self.spiffe_id.as_deref() == Some(leaf.id.as_str())
                && leaf.issued_at() <= self.revoked_at)
    }
}

/// Roots by trust domain, and the revocations published with them.
#[derive(Clone, Debug, Default)]
pub struct TrustBundles {
    domains: HashMap<TrustDomain, Bundle>,
    /// JWT-SVID signing keys by trust domain (a domain may have these without roots).
    jwt: HashMap<TrustDomain, Vec<JwtAuthority>>,
    revocations: Vec<Revocation>,
    /// The trust domain whose CA published the revocations: they cover its leaves only (a
    /// domain revokes its own identities, never a federated domain's).
    revocations_of: Option<TrustDomain>,
    /// Counts changes of the roots (not of revocations) through a [`BundleStore`]; sessions
    /// verified under one epoch are not resumed under another.
    anchors_epoch: u64,
}

impl TrustBundles {
    /// A set holding one trust domain's roots.
    pub fn single(td: TrustDomain, roots: Vec<CertificateDer<'static>>) -> Result<Self, PemError> {
        let mut bundles = Self::default();
        bundles.insert(td, roots)?;
        Ok(bundles)
    }

    /// Sets (replaces) the roots of `td`. Every root must parse as a trust anchor.
    pub fn insert(
        &mut self,
        td: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<(), PemError> {
        let what = format!("trust bundle for {td}");
        if roots.is_empty() {
            return Err(PemError::NoCertificates(what));
        }
        let anchors = roots
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| PemError::Malformed {
                        what: what.clone(),
                        detail: format!("root is not a usable certificate: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.domains.insert(
            td,
            Bundle {
                roots,
                anchors,
                issuers: None,
            },
        );
        Ok(())
    }

    /// Restricts `td` to leaves signed by one of `issuers` (an empty list refuses every
    /// leaf). Fails if `td` has no roots.
    pub fn restrict_issuers(
        &mut self,
        td: &TrustDomain,
        issuers: Vec<SpkiHash>,
    ) -> Result<(), PemError> {
        let bundle = self
            .domains
            .get_mut(td)
            .ok_or_else(|| PemError::NoCertificates(format!("trust bundle for {td}")))?;
        bundle.issuers = Some(issuers);
        Ok(())
    }

    /// Whether `issuer` may sign leaves of the trust domain named `td`: any issuer under its
    /// roots when its bundle names none, else only those named. False for a domain not held.
    pub fn allows_issuer(&self, td: &str, issuer: &SpkiHash) -> bool {
        self.domains
            .iter()
            .find(|(k, _)| k.as_str() == td)
            .is_some_and(|(_, b)| b.issuers.as_ref().is_none_or(|a| a.contains(issuer)))
    }

    /// The anchors of the trust domain named `td`, if we trust it at all.
    pub fn anchors(&self, td: &str) -> Option<&[TrustAnchor<'static>]> {
        self.domains
            .iter()
            .find(|(k, _)| k.as_str() == td)
            .map(|(_, b)| b.anchors.as_slice())
    }

    /// The root certificates of `td`.
    pub fn roots(&self, td: &TrustDomain) -> Option<&[CertificateDer<'static>]> {
        self.domains.get(td).map(|b| b.roots.as_slice())
    }

    /// Sets (replaces) the JWT-SVID signing keys of `td`; an empty list removes them.
    pub fn set_jwt_authorities(&mut self, td: TrustDomain, keys: Vec<JwtAuthority>) {
        if keys.is_empty() {
            self.jwt.remove(&td);
        } else {
            self.jwt.insert(td, keys);
        }
    }

    /// The JWT-SVID signing keys of the trust domain named `td` (none if not held).
    pub fn jwt_authorities(&self, td: &str) -> &[JwtAuthority] {
        self.jwt
            .iter()
            .find(|(k, _)| k.as_str() == td)
            .map_or(&[], |(_, keys)| keys.as_slice())
    }

    /// Every trust domain's JWT-SVID signing keys.
    pub fn all_jwt_authorities(&self) -> impl Iterator<Item = (&TrustDomain, &[JwtAuthority])> {
        self.jwt.iter().map(|(td, keys)| (td, keys.as_slice()))
    }

    /// Replaces the revocation list (covering leaves of every domain held).
    pub fn set_revocations(&mut self, revocations: Vec<Revocation>) {
        self.revocations = revocations;
        self.revocations_of = None;
    }

    /// Replaces the revocation list, as published by `td`'s CA: it covers `td`'s leaves only.
    pub fn set_revocations_of(&mut self, td: TrustDomain, revocations: Vec<Revocation>) {
        self.revocations = revocations;
        self.revocations_of = Some(td);
    }

    /// The revocations in force.
    pub fn revocations(&self) -> &[Revocation] {
        &self.revocations
    }

    /// The revocation covering `leaf`, if any.
    pub fn revocation_for(&self, leaf: &SvidLeaf) -> Option<&Revocation> {
        if let Some(td) = &self.revocations_of {
            if !leaf.id.is_member_of(td) {
                return None;
            }
        }
        self.revocations.iter().find(|r| r.covers(leaf))
    }

    /// The trust domains held.
    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.domains.keys()
    }

    /// Which generation of roots this is, as counted by the [`BundleStore`] holding it.
    pub fn anchors_epoch(&self) -> u64 {
        self.anchors_epoch
    }

    fn same_roots(&self, other: &Self) -> bool {
        self.domains.len() == other.domains.len()
            && self.domains.iter().all(|(td, b)| {
                other
                    .domains
                    .get(td)
                    .is_some_and(|o| o.roots == b.roots && o.issuers == b.issuers)
            })
    }
}

/// The current [`TrustBundles`], replaceable at run time; clones share one value.
#[derive(Clone, Debug)]
pub struct BundleStore {
    tx: Arc<watch::Sender<Arc<TrustBundles>>>,
}

impl BundleStore {
    /// A store starting with `bundles`.
    pub fn new(bundles: TrustBundles) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Arc::new(bundles))),
        }
    }

    /// The bundles in force now.
    pub fn current(&self) -> Arc<TrustBundles> {
        self.tx.borrow().clone()
    }

    /// Replaces the bundles; handshakes that start after this see the new ones. A change of
    /// roots or of allowed issuers starts a new anchors epoch (so no session verified before
    /// is resumed); a change of revocations alone does not.
    pub fn replace(&self, mut bundles: TrustBundles) {
        self.tx.send_modify(|current| {
            bundles.anchors_epoch = if current.same_roots(&bundles) {
                current.anchors_epoch
            } else {
                current.anchors_epoch.wrapping_add(1)
            };
            *current = Arc::new(bundles);
        });
    }

    /// A receiver that is told when the bundles change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<TrustBundles>> {
        self.tx.subscribe()
    }
}
