//! What every API handler shares: the connection's view of its client ([`ConnInfo`]), the
//! response type and its JSON and text forms, the request body read within its limits, and
//! how a state failure is answered.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::CertificateDer;
use ward_api::ErrorCode;

use super::error::ApiError;
use super::CaService;
use crate::authority::records::fingerprint;
use crate::state::StateError;

/// What the connection knows about its client.
#[derive(Debug)]
pub struct ConnInfo {
    /// TCP peer address.
    pub peer: SocketAddr,
    /// The client's SVID, if it presented one: its chain was verified against the bundle by
    /// the TLS layer at the handshake, so per request only its validity period and the
    /// revocation list are checked, and that the CA has a record of this very certificate.
    pub client: Option<ward_identity::SvidLeaf>,
    /// Hex SHA-256 of the client leaf's DER, compared with the record of its serial.
    pub client_fingerprint: Option<String>,
}

impl ConnInfo {
    /// Builds the connection's view of a verified client chain.
    pub fn new(peer: SocketAddr, certs: Option<&[CertificateDer<'_>]>) -> Self {
        let leaf = certs.and_then(|c| c.first());
        let client = leaf.and_then(|leaf| ward_identity::SvidProfile::check(leaf).ok());
        Self {
            peer,
            client_fingerprint: leaf.map(|der| fingerprint(der)),
            client,
        }
    }
}

/// A response of the API.
pub(super) type Resp = Response<Full<Bytes>>;

/// A 200 with one of the contract's documents as its JSON body.
pub(super) fn json_response(value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp
}

/// A state failure as the API answers it: 503 `state_unavailable`, logged.
pub(super) fn state_error(e: StateError) -> ApiError {
    tracing::error!(error = %e, "state database error");
    ApiError::new(
        ErrorCode::StateUnavailable,
        format!("the CA cannot record issuance right now: {e}"),
    )
}

/// Reads the whole body within the size and time limits. Endpoints read it before they
/// refuse anything: answering early and closing with unread bytes in the socket makes the
/// kernel send RST, and the client may lose the answer.
pub(super) async fn read_body(req: Request<Incoming>, ca: &CaService) -> Result<Bytes, ApiError> {
    let limits = ca.settings.get().limits;
    let limit = limits.max_body_bytes;
    let body = Limited::new(req.into_body(), limit);
    let bytes = match tokio::time::timeout(limits.request_timeout, body.collect()).await {
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::RequestTimeout,
                "request body not received in time",
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("request body exceeds {limit} bytes"),
            ))
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                ErrorCode::BadBody,
                format!("cannot read request body: {e}"),
            ))
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    Ok(bytes)
}
