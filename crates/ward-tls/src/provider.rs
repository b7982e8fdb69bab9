//! The one place the crypto provider and protocol versions are chosen.
//!
//! ring is used for now: it builds quickly on a 2-core machine and its AES-GCM is the faster
//! of the two here (GUIDE.md); aws-lc-rs has the faster X25519. The benchmark issue decides
//! with measurements; switching means changing this file and the workspace features only.
//! TLS 1.3 is the only version ward speaks by default.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// The crypto provider every ward TLS config uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Protocol versions ward offers and accepts: TLS 1.3 only.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
