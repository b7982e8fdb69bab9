//! API errors: every refusal is a 4xx with `{"error": "<stable_code>", "message": "..."}`
//! (the [`ward_api::ErrorBody`] both sides compile against). Only a failure of the CA itself
//! (its database refusing a write) is a 5xx. The status comes from the code, so the two can
//! never disagree.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use ward_api::{ErrorBody, ErrorCode};

use crate::authority::error::{CaError, CsrError};
use crate::authority::jwt_svid::JwtSvidError;
use crate::authority::kube_jwt::JwtError;

/// A refusal with its stable code and human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Stable machine-readable code (and with it the HTTP status).
    pub code: ErrorCode,
    /// Human text.
    pub message: String,
}

impl ApiError {
    /// A refusal.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status it is sent with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The JSON response.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = ErrorBody {
            error: self.code,
            message: self.message.clone(),
        };
        let text = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = Response::new(Full::new(Bytes::from(text)));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        if self.code == ErrorCode::RateLimited {
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
        Self::new(e.code(), e.to_string())
    }
}

impl From<JwtSvidError> for ApiError {
    fn from(e: JwtSvidError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        let code = match &e {
            CaError::Csr(CsrError::Malformed(_)) => ErrorCode::MalformedCsr,
            CaError::Csr(CsrError::BadSignature) => ErrorCode::BadCsrSignature,
            CaError::Csr(CsrError::UnsupportedKey(_)) => ErrorCode::UnsupportedKey,
            CaError::Ttl { .. } => ErrorCode::InvalidTtl,
            CaError::ForeignId { .. } => ErrorCode::WrongTrustDomain,
            CaError::NotWorkload(_) | CaError::InvalidDnsName(_) => ErrorCode::InvalidId,
            _ => ErrorCode::IssuerUnavailable,
        };
        Self::new(code, e.to_string())
    }
}
