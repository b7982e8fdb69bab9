//! ward-tls: the only ward crate that implements rustls traits.
//!
//! It owns how ward speaks TLS: the crypto provider and TLS 1.3-only versions
//! ([`provider`]), SPIFFE verification of peers against per-trust-domain bundles
//! ([`verify`], [`bundle`]), TLS 1.3 session resumption that re-checks the peer every time
//! ([`session`]), the hot-swappable store of this workload's own certificate
//! ([`store`]), the JWT-SVID keys a bundle may carry and
//! their signature check ([`jwt`]), the client and server configs built from them ([`config`]), and the PEM and
//! atomic-file helpers that keep key material safe on disk ([`pem`], [`files`]). Nothing here
//! weakens verification; should such a thing ever be needed (tests only), it belongs in a
//! module named `danger`.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod config;
pub mod error;
pub mod files;
pub mod jwt;
pub mod pem;
pub mod provider;
pub mod session;
pub mod store;
pub mod verify;

pub use bundle::{BundleStore, Revocation, SpkiHash, TrustBundles};
pub use config::{
    client_config, server_config, server_config_optional_client_auth, server_config_public,
    server_config_web, Resumption,
};
pub use error::{FileError, PemError, StoreError, TlsError, VerifyError};
pub use jwt::{JwtAuthority, JwtKeyError, JwtPublicKey};
pub use provider::{group_label, KeyExchange, KxGroup};
pub use store::{CertResolver, CertStore, Identity};
pub use verify::{
    describe, handshake_failure, peer_id, refusal_reason, verify_svid, verify_svid_path,
    ClientAuthorizer, SpiffeClientVerifier, SpiffeServerVerifier, Usage,
};

#[cfg(test)]
mod tests;
