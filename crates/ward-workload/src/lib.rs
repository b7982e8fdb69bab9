//! ward-workload: the SPIFFE Workload API, served by the sidecar on a Unix socket to the app
//! beside it.
//!
//! The app gets its own X.509-SVID (the sidecar obtains a second certificate with the same
//! SPIFFE ID for a key pair it makes for the app, so the sidecar's own key never leaves its
//! memory), its trust bundles, JWT-SVIDs (asked of the CA through the sidecar and cached per
//! audience set), JWT bundles, and JWT-SVID validation. The wire format is generated at build
//! time from `proto/workload.proto` (same service, messages and field numbers as the SPIFFE
//! specification) by a protobuf compiler written in Rust, so no `protoc` is needed.
//!
//! [`socket::bind`] takes the socket (never a live server's), [`server::serve`] accepts and
//! admits calls (the `workload.spiffe.io` header, then the kernel's peer credentials),
//! [`service::WorkloadApi`] answers them from [`Sources`] the sidecar keeps current, and
//! [`jwt`] and [`cache`] hold the JWT-SVID rules.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod error;
pub mod hpack;
pub mod jwt;
pub mod limits;
pub mod metrics;
pub mod normalize;
pub mod resets;
pub mod server;
pub mod service;
pub mod socket;

use rustls_pki_types::CertificateDer;
use ward_identity::SpiffeId;
use zeroize::Zeroizing;

pub use cache::{IssueError, IssueFuture, IssuedJwt, JwtIssuer};
pub use config::WorkloadApiConfig;
pub use error::WorkloadError;
pub use metrics::ApiMetrics;
pub use service::{Sources, WorkloadApi};

/// The generated messages, server and client of `proto/workload.proto`.
#[allow(
    missing_docs,
    unused_qualifications,
    clippy::all,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("_");
}

/// The app's X.509-SVID: the chain and the private key the Workload API hands out.
pub struct X509Svid {
    /// The SPIFFE ID it proves.
    pub id: SpiffeId,
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The app's private key, PKCS#8 DER (wiped from memory when dropped).
    pub key: Zeroizing<Vec<u8>>,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Svid")
            .field("id", &self.id)
            .field("not_after", &self.not_after)
            .field("key", &"...")
            .finish()
    }
}

#[cfg(test)]
mod hpack_tests;
#[cfg(test)]
mod jwt_tests;
#[cfg(test)]
mod normalize_tests;
