//! The CA's request bodies, decoded strictly into the [`ward_api`] contract types: unknown
//! fields, wrong types and malformed JSON are all a `400 malformed_json` naming the problem.
//! Separate from the handlers so the decoding can be fuzzed without a server
//! (fuzz/fuzz_targets/ca_request.rs).

use serde::Deserialize;
use ward_api::ErrorCode;

pub use ward_api::{EnrollRequest, RenewRequest, RevokeRequest};

use crate::server::error::ApiError;

/// Decodes a JSON request body into `T`.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("invalid request JSON: {e}"),
        )
    })
}
