//! API errors: every refusal is a 4xx with `{"error": "<stable_code>", "message": "..."}`.
//! Only a failure of the CA itself (its database refusing a write) is a 5xx.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::error::{CaError, CsrError};
use crate::jwt::JwtError;

/// A refusal with its HTTP status, stable code and human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human text.
    pub message: String,
}

impl ApiError {
    /// A refusal.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The JSON response.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = json!({"error": self.code, "message": self.message}).to_string();
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

impl From<JwtError> for ApiError {
    fn from(e: JwtError) -> Self {
        match e {
            JwtError::Malformed(_) => Self::bad_request(e.code(), e.to_string()),
            _ => Self::unauthorized(e.code(), e.to_string()),
        }
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        match &e {
            CaError::Csr(CsrError::Malformed(_)) => {
                Self::bad_request("malformed_csr", e.to_string())
            }
            CaError::Csr(CsrError::BadSignature) => {
                Self::bad_request("bad_csr_signature", e.to_string())
            }
            CaError::Csr(CsrError::UnsupportedKey(_)) => {
                Self::bad_request("unsupported_key", e.to_string())
            }
            CaError::Ttl { .. } => Self::bad_request("invalid_ttl", e.to_string()),
            CaError::ForeignId { .. } => Self::forbidden("wrong_trust_domain", e.to_string()),
            CaError::NotWorkload(_) | CaError::InvalidDnsName(_) => {
                Self::bad_request("invalid_id", e.to_string())
            }
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "issuer_unavailable",
                e.to_string(),
            ),
        }
    }
}
