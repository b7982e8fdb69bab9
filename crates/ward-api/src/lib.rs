//! ward-api: the contract of ward-ca's HTTP API, in one place both sides compile against.
//!
//! The CA serializes these types and the sidecar deserializes the same ones, so a change to
//! the wire format breaks the build of both, not production. [`error`] is the refusal body
//! (`{"error": <code>, "message": ...}`) with its codes as an enum that knows its HTTP
//! status; [`messages`] holds the request and response documents of `/v1/enroll`,
//! `/v1/renew`, `/v1/bundle` and `/v1/revoke`. Plain data with serde only: no HTTP, no TLS,
//! no I/O.

#![forbid(unsafe_code)]

pub mod error;
pub mod messages;

pub use error::{ErrorBody, ErrorCode};
pub use messages::{
    AllowedIssuer, BundleDocument, EnrollRequest, FederatedBundle, Issued, IssuerRole, Jwk,
    JwtIssued, JwtRequest, RenewRequest, RevocationEntry, RevokeRequest, Revoked, SpiffeBundle,
};

/// `POST`: enroll with a join token or a Kubernetes service-account token.
pub const ENROLL: &str = "/v1/enroll";
/// `POST` over mTLS: a new certificate for the presented one's ID.
pub const RENEW: &str = "/v1/renew";
/// `GET`: roots, allowed issuers and revocations.
pub const BUNDLE: &str = "/v1/bundle";
/// `POST` over mTLS, admins only: record a revocation.
pub const REVOKE: &str = "/v1/revoke";
/// `POST` over mTLS: a JWT-SVID for the caller's own ID.
pub const JWT: &str = "/v1/jwt";

#[cfg(test)]
mod tests;
