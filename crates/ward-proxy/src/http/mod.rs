//! HTTP mode (`protocol: http`), the parts inbound and outbound share: the body type, JSON
//! error answers, hop-by-hop header handling (RFC 9110 §7.6.1), the server builder with the
//! request-head limits; [`access`] is the per-request access-log event and metrics.

pub mod access;
pub mod inbound;
pub mod outbound;

pub use access::{RequestLog, RequestMetrics};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Full, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
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

/// Every body this mode produces or forwards: the sidecar's own answers, and requests and
/// responses streamed through (a request's limited to `max_request_body_bytes`). An enum
/// rather than a boxed trait object, so forwarding a message allocates nothing for its body.
#[derive(Debug)]
pub enum Body {
    /// A fixed body (the sidecar's own JSON answers).
    Full(Full<Bytes>),
    /// A body streamed as it arrives.
    Streamed(Incoming),
    /// A streamed request body, cut at the limit.
    Limited(Limited<Incoming>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Body::Streamed(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            Body::Limited(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_end_stream(),
            Body::Streamed(b) => b.is_end_stream(),
            Body::Limited(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => b.size_hint(),
            Body::Streamed(b) => b.size_hint(),
            Body::Limited(b) => b.size_hint(),
        }
    }
}

/// A fixed body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Full(Full::new(bytes.into()))
}

/// A streamed body from hyper.
pub fn streamed(body: Incoming) -> Body {
    Body::Streamed(body)
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
pub fn limit_body(req: Request<Incoming>, max: u64) -> Result<Request<Body>, BodyTooLarge> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(BodyTooLarge);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    Ok(req.map(|b| Body::Limited(Limited::new(b, limit))))
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
    // A name from the fixed list (`Connection: keep-alive`, on nearly every HTTP/1.1
    // message) is removed below anyway and `close` is a constant: neither is copied.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| {
            !HOP_BY_HOP
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|n| match n.eq_ignore_ascii_case("close") {
            true => Some(HeaderName::from_static("close")),
            false => HeaderName::from_bytes(n.as_bytes()).ok(),
        })
        .collect();
    for name in named {
        headers.remove(name);
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
