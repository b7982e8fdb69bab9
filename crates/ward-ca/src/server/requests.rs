//! The CA's request bodies, decoded strictly: unknown fields, wrong types and malformed JSON
//! are all a `400 malformed_json` naming the problem. Separate from the handlers so the
//! decoding can be fuzzed without a server (fuzz/fuzz_targets/ca_request.rs).

use serde::Deserialize;

use crate::server::error::ApiError;

/// Decodes a JSON request body into `T`.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("invalid request JSON: {e}")))
}

/// `POST /v1/enroll`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The CSR, PEM.
    pub csr: String,
    /// Join token or Kubernetes service-account JWT.
    pub token: String,
}

/// `POST /v1/renew`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PEM CSR for the new key.
    pub csr: String,
}

/// `POST /v1/revoke`: an ID or a serial, with an optional reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Revoke every certificate of this ID issued before now.
    pub spiffe_id: Option<String>,
    /// Revoke the certificate with this serial (hex).
    pub serial: Option<String>,
    /// Free text for the audit log.
    pub reason: Option<String>,
}
