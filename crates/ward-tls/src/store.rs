//! The hot-swappable certificate store: this workload's own SVID, published to connections.
//!
//! One writer ([`CertStore`]) validates a candidate chain and key completely before anything
//! can use it: the key must match the leaf, the leaf must be an SVID of the store's trust
//! domain, and the chain must verify against the current bundle for both client and server use
//! at this moment (so an expired or not-yet-valid certificate is refused). Only then is it
//! published. Readers ([`CertResolver`], used by rustls on both sides) take the current value
//! per handshake, so a renewal reaches new connections without touching open ones.

use std::fmt;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::sync::watch;
use ward_identity::{SpiffeId, SvidLeaf, TrustDomain};

use crate::bundle::{BundleStore, SpkiHash, TrustBundles};
use crate::error::StoreError;
use crate::provider::crypto_provider;
use crate::verify::{verify_svid, verify_svid_path, Usage};

/// A validated workload identity: certificate chain, signing key and the leaf's facts.
pub struct Identity {
    leaf: SvidLeaf,
    /// Key hash of the CA certificate that signed the leaf (to see when the CA signs with
    /// another issuer, or retires this one).
    issuer: SpkiHash,
    certified: Arc<CertifiedKey>,
}

impl Identity {
    /// Validates `chain` (leaf first) and `key` for `trust_domain` against `bundles` at `now`.
    pub fn validate(
        trust_domain: &TrustDomain,
        bundles: &TrustBundles,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        now: UnixTime,
    ) -> Result<Self, StoreError> {
        let (leaf_der, intermediates) = chain.split_first().ok_or(StoreError::EmptyChain)?;
        let signing_key = crypto_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| StoreError::BadKey(e.to_string()))?;
        let (leaf, issuer) =
            verify_svid_path(bundles, leaf_der, intermediates, now, Usage::Server)?;
        verify_svid(bundles, leaf_der, intermediates, now, Usage::Client)?;
        if !leaf.id.is_member_of(trust_domain) {
            return Err(StoreError::WrongTrustDomain {
                got: leaf.id,
                want: trust_domain.to_string(),
            });
        }
        let certified = CertifiedKey::new(chain, signing_key);
        // ring keys always expose their public key, so "unknown" would be a provider change;
        // refuse it too rather than publish a key we could not check.
        certified
            .keys_match()
            .map_err(|_| StoreError::KeyMismatch)?;
        Ok(Self {
            leaf,
            issuer,
            certified: Arc::new(certified),
        })
    }

    /// Key hash of the CA certificate that signed this identity.
    pub fn issuer(&self) -> SpkiHash {
        self.issuer
    }

    /// The SPIFFE ID this identity proves.
    pub fn id(&self) -> &SpiffeId {
        &self.leaf.id
    }

    /// Facts of the leaf certificate (serial, validity).
    pub fn leaf(&self) -> &SvidLeaf {
        &self.leaf
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    /// True when the leaf has expired at `unix_now` (seconds).
    pub fn is_expired_at(&self, unix_now: i64) -> bool {
        unix_now >= self.leaf.not_after
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.leaf.id)
            .field("serial", &self.leaf.serial_hex)
            .field("not_before", &self.leaf.not_before)
            .field("not_after", &self.leaf.not_after)
            .field("key", &"...")
            .finish()
    }
}

/// The single writer of this workload's identity.
#[derive(Debug)]
pub struct CertStore {
    trust_domain: TrustDomain,
    bundles: BundleStore,
    tx: Arc<watch::Sender<Option<Arc<Identity>>>>,
}

impl CertStore {
    /// An empty store for `trust_domain`; nothing is served until the first publish.
    pub fn new(trust_domain: TrustDomain, bundles: BundleStore) -> Self {
        Self {
            trust_domain,
            bundles,
            tx: Arc::new(watch::Sender::new(None)),
        }
    }

    /// Validates and, only if valid, publishes a new identity. On error the previous identity
    /// stays in force.
    pub fn publish(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<Identity>, StoreError> {
        let identity = Arc::new(Identity::validate(
            &self.trust_domain,
            &self.bundles.current(),
            chain,
            key,
            UnixTime::now(),
        )?);
        self.install(identity.clone());
        Ok(identity)
    }

    /// Validates a new identity against a new bundle and, only if it is valid, installs both:
    /// the bundle first, so the identity never runs ahead of the roots that anchor it. On
    /// error neither changes.
    pub fn publish_with_bundles(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        bundles: TrustBundles,
    ) -> Result<Arc<Identity>, StoreError> {
        let identity = Arc::new(Identity::validate(
            &self.trust_domain,
            &bundles,
            chain,
            key,
            UnixTime::now(),
        )?);
        self.bundles.replace(bundles);
        self.install(identity.clone());
        Ok(identity)
    }

    fn install(&self, identity: Arc<Identity>) {
        tracing::info!(
            id = %identity.id(),
            serial = %identity.leaf.serial_hex,
            not_after = identity.leaf.not_after,
            "identity published"
        );
        self.tx.send_replace(Some(identity));
    }

    /// The identity in force, if any.
    pub fn current(&self) -> Option<Arc<Identity>> {
        self.tx.borrow().clone()
    }

    /// A receiver told about every publish.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Identity>>> {
        self.tx.subscribe()
    }

    /// The bundles this store validates against.
    pub fn bundles(&self) -> &BundleStore {
        &self.bundles
    }

    /// A resolver for rustls client and server configs that serves the current identity.
    pub fn resolver(&self) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            rx: self.tx.subscribe(),
        })
    }
}

/// Serves the store's current identity to rustls; serves nothing once it has expired, so a
/// stale certificate fails the handshake here rather than at the peer.
#[derive(Debug)]
pub struct CertResolver {
    rx: watch::Receiver<Option<Arc<Identity>>>,
}

impl CertResolver {
    fn live(&self) -> Option<Arc<CertifiedKey>> {
        let identity = self.rx.borrow().clone()?;
        let now = ward_identity::unix_now();
        if identity.is_expired_at(now) {
            return None;
        }
        crate::session::record_own(&identity.leaf.serial_hex);
        Some(identity.certified.clone())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.live()
    }
}

impl ResolvesClientCert for CertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.live()
    }

    fn has_certs(&self) -> bool {
        self.rx.borrow().is_some()
    }
}
