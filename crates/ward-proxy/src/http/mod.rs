//! HTTP mode (`protocol: http`), the parts inbound and outbound share: the body type, JSON
//! error answers, hop-by-hop header handling (RFC 9110 §7.6.1), the server builder with the
//! request-head limits; [`access`] is the per-request access-log event and metrics.

pub mod access;
pub mod inbound;
pub mod outbound;

pub use access::{RequestLog, RequestMetrics};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::json;

use crate::limits::Limits;

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body this mode produces or forwards.
pub type Body = BoxBody<Bytes, BoxError>;

/// A fixed body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A streamed body from hyper.
pub fn streamed(body: hyper::body::Incoming) -> Body {
    body.map_err(BoxError::from).boxed()
}

/// A JSON answer from the sidecar itself: `{"error": code, "message": ...}` plus `extra`
/// fields. The app's content never appears in it.
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: serde_json::Value,
) -> Response<Body> {
    let mut body = json!({ "error": code, "message": message });
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    let mut resp = Response::new(full(format!("{body}\n")));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A request whose declared body length is over the limit.
#[derive(Debug)]
pub struct BodyTooLarge;

/// The request with its body limited to `max` bytes, or [`BodyTooLarge`] when its declared
/// length is already larger. A longer streamed body fails the forwarding (see
/// [`is_body_limit`]).
pub fn limit_body(
    req: Request<hyper::body::Incoming>,
    max: u64,
) -> Result<Request<Body>, BodyTooLarge> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyTooLarge);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    Ok(req.map(|b| Limited::new(b, limit).boxed()))
}

/// Status, code and message of the `413` answer.
pub fn too_large(max: u64) -> (StatusCode, &'static str, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds {max} bytes"),
    )
}

/// True when `err` (or what caused it) is the body limit of [`limit_body`].
pub fn is_body_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The headers that are always hop-by-hop (RFC 9110 §7.6.1, and the two legacy ones).
const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes the hop-by-hop headers: those `Connection` names, and the ones that are always
/// hop-by-hop. The forwarding side sets its own framing and connection handling.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The server side of an HTTP listener: HTTP/1.1 and HTTP/2 (by preface), with the
/// request-head size and time limits (HTTP/1.1 answers 431 and cuts slow heads).
pub fn server_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_header_timeout)
        .max_buf_size(limits.max_request_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}
