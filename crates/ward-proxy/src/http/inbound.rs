//! Inbound HTTP: after the mTLS handshake (which already refused peers that no rule could
//! admit), every request is authorized with the peer's ID, the listener, the method and the
//! normalized path. A denied request gets `403` with a JSON body naming the rule and never
//! reaches the app. An allowed one is forwarded over a pool of keep-alive HTTP/1.1
//! connections to the app, with the normalized path, without hop-by-hop headers and with an
//! `x-forwarded-client-cert` header that the sidecar wrote itself (any the caller sent is
//! removed first), in Envoy's format: `By=<own ID>;Hash=<SHA-256 of the peer leaf>;URI=<peer ID>`.
//!
//! What the app receives must mean what was authorized, also to servers that read requests
//! loosely: a method with a lower-case letter (`delete`, which Werkzeug, Waitress and
//! ASP.NET Core treat as `DELETE`) is refused with 400 rather than matched or forwarded as
//! sent; headers whose names contain `_` (which CGI and WSGI servers fold into `-`) are
//! dropped, refused or allowed per listener (`headers_with_underscores`), and one that folds
//! into a header about the caller (`x-forwarded-client-cert`, `x-forwarded-for`, `forwarded`,
//! `x-real-ip`, ...) is always removed. By default (`x_forwarded_for: replace`) the caller's
//! own `Forwarded`, `X-Real-IP`, `True-Client-IP`, `X-Client-IP` and `X-Forwarded-Host` are
//! removed too.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use ward_identity::SpiffeId;
use ward_policy::http::{encode_path, normalize_path, RequestFacts};

use super::{
    is_body_limit, json_error, limit_body, server_builder, streamed, strip_hop_by_hop, too_large,
    Body, BodyTooLarge, RequestLog, RequestMetrics,
};
use crate::config::{ForwardedFor, UnderscoreHeaders};
use crate::limits::Limits;
use crate::pipe::CloseReason;
use crate::Shared;

/// The header the app reads the caller's identity from.
pub const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// The caller's address, for the app.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// How the request arrived (`https`: over the sidecars' mTLS).
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers about the caller that an app may take as the sidecar's word: the three it sets
/// (`x-forwarded-client-cert`, `x-forwarded-for`, `x-forwarded-proto`) and those it strips
/// from callers in `replace` mode ([`CALLER_CLAIMS`]). Any header that reads as one of these
/// once `_` reads as `-` is removed in every mode: a CGI/WSGI app folds `X_Forwarded_For`
/// into the same variable as `X-Forwarded-For`.
const TRUSTED: [&str; 8] = [
    "x-forwarded-client-cert",
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-forwarded-host",
];

/// What a caller says about itself in headers other than the `x-forwarded-*` pair: removed in
/// `replace` mode (the default), since nothing vouches for them; kept in `append` mode, where
/// the caller is a gateway the app trusts. ward does not set `Forwarded`.
const CALLER_CLAIMS: [HeaderName; 5] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-forwarded-host"),
];

/// Pooled HTTP/1.1 connections to the app.
pub type AppClient = Client<HttpConnector, Body>;

/// A pool for one listener's app.
pub fn app_client(limits: &Limits) -> AppClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(limits.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// The `x-forwarded-client-cert` value for a connection.
pub fn xfcc(own: &SpiffeId, peer: &SpiffeId, peer_leaf: &[u8]) -> Option<HeaderValue> {
    let hash = ward_tls::files::sha256_hex(peer_leaf);
    HeaderValue::from_str(&format!("By={own};Hash={hash};URI={peer}")).ok()
}

/// Sets `x-forwarded-for` to the connection's address (`own`, kept per connection) and
/// `x-forwarded-proto` to `https` (it arrived over mTLS): what the caller sent is replaced,
/// or with `append` extended (for `x-forwarded-proto` the caller's first value is kept then,
/// as a gateway would have set it).
fn forwarded(headers: &mut hyper::HeaderMap, own: Option<&HeaderValue>, mode: ForwardedFor) {
    const HTTPS: HeaderValue = HeaderValue::from_static("https");
    if mode == ForwardedFor::Replace {
        headers.remove(X_FORWARDED_FOR);
        headers.remove(X_FORWARDED_PROTO);
        for name in &CALLER_CLAIMS {
            headers.remove(name);
        }
        if let Some(own) = own {
            headers.insert(X_FORWARDED_FOR, own.clone());
        }
        headers.insert(X_FORWARDED_PROTO, HTTPS);
        return;
    }
    let own = own.and_then(|v| v.to_str().ok()).map(str::to_owned);
    let theirs: Vec<String> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let their_proto = headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned());
    headers.remove(X_FORWARDED_FOR);
    headers.remove(X_FORWARDED_PROTO);
    let list: Vec<String> = theirs.into_iter().chain(own).collect();
    if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
        if !list.is_empty() {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    let proto = match their_proto {
        Some(p) if p == "http" || p == "https" => p,
        _ => "https".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&proto) {
        headers.insert(X_FORWARDED_PROTO, v);
    }
}

/// Applies the listener's rule for header names containing `_`; `Err` names the first such
/// header when the rule is to reject. Whatever the rule, a header that reads as one of
/// [`TRUSTED`] once `_` reads as `-` is removed (names are already lower case here).
fn underscore_headers(
    headers: &mut hyper::HeaderMap,
    action: UnderscoreHeaders,
) -> Result<(), HeaderName> {
    let underscored: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in underscored {
        let reads_as_trusted = || TRUSTED.contains(&name.as_str().replace('_', "-").as_str());
        match action {
            UnderscoreHeaders::Reject => return Err(name),
            UnderscoreHeaders::Drop => drop(headers.remove(&name)),
            UnderscoreHeaders::Allow if reads_as_trusted() => drop(headers.remove(&name)),
            UnderscoreHeaders::Allow => {}
        }
    }
    Ok(())
}

/// What every request of one connection needs.
#[derive(Debug)]
pub struct Ctx {
    /// Listener name.
    pub listener: String,
    /// The app, `host:port`.
    pub forward: String,
    /// `forward` as a URI authority (`None` if it is not one: requests then get 400).
    pub authority: Option<Authority>,
    /// The verified peer.
    pub peer: SpiffeId,
    /// The header value to send to the app.
    pub xfcc: HeaderValue,
    /// What to do with header names that contain `_`.
    pub underscores: UnderscoreHeaders,
    /// The address the mTLS connection came from (the calling sidecar), as the
    /// `x-forwarded-for` entry.
    pub client: Option<HeaderValue>,
    /// `x-forwarded-for`: replaced (the default) or appended to.
    pub forwarded_for: ForwardedFor,
    /// Proxy-wide state (policy, limits, metrics).
    pub shared: Arc<Shared>,
    /// The pool to the app (this connection worker's).
    pub app: AppClient,
    /// This connection's handles on the request metrics.
    pub requests: RequestMetrics,
}

impl Ctx {
    /// The request target for the app: `http://{forward}{path}?{query}`, the path encoded.
    fn target(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let mut path_and_query = encode_path(path);
        if let Some(q) = query {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone()?);
        parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
        Uri::from_parts(parts).ok()
    }
}

/// Serves HTTP/1.1 or HTTP/2 on `io` until the client is done or `stop` resolves (policy or
/// revocation no longer admits the peer, or the proxy is closing): then in-flight requests
/// get a few seconds and the connection is closed.
pub async fn serve<I>(io: I, ctx: Arc<Ctx>, stop: impl Future<Output = CloseReason>) -> CloseReason
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = server_builder(&ctx.shared.limits);
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let ctx = svc_ctx.clone();
        async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::pin!(stop);
    tokio::select! {
        result = conn.as_mut() => match result {
            Ok(()) => CloseReason::Done,
            Err(e) => CloseReason::Error(e.to_string()),
        },
        reason = &mut stop => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            reason
        }
    }
}

async fn handle(mut req: Request<Incoming>, ctx: &Ctx) -> Response<Body> {
    let mut log = RequestLog::new(
        &ctx.requests,
        ctx.peer.as_str(),
        req.method(),
        req.uri().path(),
    );
    if req
        .method()
        .as_str()
        .bytes()
        .any(|b| b.is_ascii_lowercase())
    {
        log.answered(StatusCode::BAD_REQUEST, "-", "-", "non-canonical method");
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_method",
            &format!(
                "method {:?} is refused: methods are case-sensitive and sent in upper case",
                req.method().as_str()
            ),
            json!({}),
        );
    }
    if let Err(name) = underscore_headers(req.headers_mut(), ctx.underscores) {
        log.answered(StatusCode::BAD_REQUEST, "-", "-", "underscore header");
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_header",
            &format!(
                "header {:?} is refused: header names with '_' are not accepted on this listener",
                name.as_str()
            ),
            json!({}),
        );
    }
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            log.answered(StatusCode::BAD_REQUEST, "-", "-", &e.to_string());
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_path",
                &format!("request path refused: {e}"),
                json!({}),
            );
        }
    };
    log.set_path(&path);
    let facts = RequestFacts {
        method: req.method().as_str(),
        path: &path,
    };
    let verdict =
        ctx.shared
            .policy
            .current()
            .policy
            .evaluate_request(&ctx.peer, &ctx.listener, &facts);
    if !verdict.permits() {
        log.answered(StatusCode::FORBIDDEN, verdict.label(), verdict.rule(), "");
        let message = format!(
            "{} may not {} {path} on listener {}",
            ctx.peer,
            req.method(),
            ctx.listener
        );
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &message,
            json!({ "rule": verdict.rule() }),
        );
    }
    if verdict.outcome() == ward_policy::Outcome::AuditDeny {
        tracing::warn!(listener = %ctx.listener, peer = %ctx.peer, method = %req.method(), path = %path, rule = verdict.rule(), "audit mode: policy would deny this request");
    }

    let Some(uri) = ctx.target(&path, req.uri().query()) else {
        log.answered(
            StatusCode::BAD_REQUEST,
            verdict.label(),
            verdict.rule(),
            "bad target",
        );
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "request target cannot be forwarded",
            json!({}),
        );
    };
    // HTTP/2 carries the host in :authority; the app speaks HTTP/1.1 and wants Host.
    if !req.headers().contains_key(HOST) {
        if let Some(authority) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(HOST, authority);
        }
    }
    strip_hop_by_hop(req.headers_mut());
    req.headers_mut().remove(XFCC);
    req.headers_mut().insert(XFCC, ctx.xfcc.clone());
    forwarded(req.headers_mut(), ctx.client.as_ref(), ctx.forwarded_for);
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;

    let limits = &ctx.shared.limits;
    let max = limits.max_request_body_bytes;
    let req = match limit_body(req, max) {
        Ok(req) => req,
        Err(BodyTooLarge) => return log.refuse(verdict.label(), verdict.rule(), too_large(max)),
    };
    let answer = tokio::time::timeout(limits.response_timeout, ctx.app.request(req)).await;
    let refusal = match answer {
        Ok(Ok(mut resp)) => {
            strip_hop_by_hop(resp.headers_mut());
            log.answered(resp.status(), verdict.label(), verdict.rule(), "");
            return resp.map(streamed);
        }
        Ok(Err(e)) if is_body_limit(&e) => too_large(max),
        Ok(Err(e)) if e.is_connect() => (
            StatusCode::BAD_GATEWAY,
            "app_unavailable",
            format!("cannot connect to the app at {}", ctx.forward),
        ),
        Ok(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            "app_error",
            format!("the app at {} failed: {e}", ctx.forward),
        ),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "app_timeout",
            format!(
                "the app at {} did not answer within {:?}",
                ctx.forward, limits.response_timeout
            ),
        ),
    };
    log.refuse(verdict.label(), verdict.rule(), refusal)
}
