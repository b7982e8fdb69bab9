//! Outbound HTTP: the app speaks plain HTTP/1.1 to the local port; each request is sent on
//! an mTLS connection to the upstream sidecar, which must prove `server_id` in the
//! handshake. Upstream connections speak HTTP/2 only (ALPN `h2`, which ward's HTTP listeners
//! offer), so one connection carries all concurrent requests: the app's requests share a
//! handshake instead of paying one each, and concurrent first requests wait for the one
//! connection being set up instead of racing to open their own.
//!
//! The pool is replaced whenever the trust bundle changes (new roots, a revocation), so a
//! pooled connection never outlives the trust that admitted it by more than its in-flight
//! requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{
    is_body_limit, json_error, limit_body, streamed, strip_hop_by_hop, too_large, Body,
    BodyTooLarge, BoxError, RequestLog, RequestMetrics,
};
use crate::limits::Limits;
use crate::Shared;
use ward_daemon::{PerWorker, Phase};

/// Dials the upstream sidecar: TCP, then the mTLS handshake that verifies `server_id`.
/// hyper-util clones its connector for every request, so what it holds is shared, not copied.
#[derive(Clone)]
pub struct UpstreamConnector {
    /// The outbound listener's name (metrics).
    pub listener: Arc<str>,
    /// The upstream sidecar, `host:port`.
    pub upstream: Arc<str>,
    /// The listener's TLS client config.
    pub tls: TlsConnector,
    /// The name sent as SNI.
    pub server_name: ServerName<'static>,
    /// Connect and handshake timeouts.
    pub limits: Limits,
    /// Where handshakes are counted.
    pub metrics: Arc<crate::Metrics>,
}

impl UpstreamConnector {
    /// Counts a failed handshake; the error text for the request's 502.
    fn failed(&self, reason: &'static str, detail: String) -> String {
        self.metrics
            .handshake_failed(&self.listener, "outbound", reason);
        format!("{}: {detail}", self.upstream)
    }
}

impl std::fmt::Debug for UpstreamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnector")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// An mTLS connection to the upstream on which HTTP/2 was negotiated (the connector refuses
/// any other).
#[derive(Debug)]
pub struct UpstreamIo {
    io: TokioIo<TlsStream<TcpStream>>,
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        Connected::new().negotiated_h2()
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // HTTP/2 keeps only the kind and text of an I/O error, so the peer's `access_denied`
        // alert is turned into the one kind that says it before h2 sees it.
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if crate::pipe::is_peer_denied(&e) => {
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the upstream's policy refused this sidecar (TLS access_denied)",
                )))
            }
            other => other,
        }
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = tokio::time::timeout(
                this.limits.connect_timeout,
                TcpStream::connect(&*this.upstream),
            )
            .await
            .map_err(|_| format!("{}: connect timed out", this.upstream))?
            .map_err(|e| format!("{}: {e}", this.upstream))?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio::time::timeout(
                this.limits.handshake_timeout,
                this.tls.connect(this.server_name.clone(), tcp),
            )
            .await
            .map_err(|_| this.failed("handshake_timeout", "handshake timed out".into()))?
            .map_err(|e| {
                let (reason, detail) = ward_tls::handshake_failure(&e);
                this.failed(reason, detail)
            })?;
            this.metrics
                .handshake(&this.listener, "outbound", tls.get_ref().1);
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(format!(
                    "{} did not negotiate HTTP/2; the upstream must be a `protocol: http` listener",
                    this.upstream
                )
                .into());
            }
            Ok(UpstreamIo {
                io: TokioIo::new(tls),
            })
        })
    }
}

type UpstreamClient = Client<UpstreamConnector, Body>;

/// One outbound HTTP listener's pool: a client (so an HTTP/2 connection) per connection
/// worker, so a request never waits on a connection driven by another thread.
#[derive(Debug)]
pub struct UpstreamPool {
    connector: UpstreamConnector,
    /// The upstream as a URI authority (`None` if it is not one: requests then get 400).
    authority: Option<Authority>,
    clients: PerWorker<RwLock<Arc<UpstreamClient>>>,
}

impl UpstreamPool {
    /// A pool dialing through `connector` (whose TLS config's ALPN offers `h2`), for
    /// `workers` connection workers.
    pub fn new(connector: UpstreamConnector, workers: usize) -> Self {
        Self {
            clients: PerWorker::new(workers, || RwLock::new(build(connector.clone()))),
            authority: connector.upstream.parse().ok(),
            connector,
        }
    }

    /// The request target on the upstream: `https://{upstream}{path and query as sent}`
    /// (`None` for a target without a path).
    fn target(&self, sent: &Uri) -> Option<Uri> {
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTPS);
        parts.authority = Some(self.authority.clone()?);
        parts.path_and_query = Some(match sent.path_and_query() {
            // `OPTIONS *` and the like have no path to forward.
            Some(p) if !p.as_str().starts_with('/') => return None,
            Some(p) => p.clone(),
            None => PathAndQuery::from_static("/"),
        });
        Uri::from_parts(parts).ok()
    }

    fn client(&self) -> Arc<UpstreamClient> {
        match self.clients.get().read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Drops every pooled connection (in-flight requests finish on theirs).
    pub fn reset(&self) {
        for client in self.clients.all() {
            if let Ok(mut c) = client.write() {
                *c = build(self.connector.clone());
            }
        }
    }
}

fn build(connector: UpstreamConnector) -> Arc<UpstreamClient> {
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_only(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .build(connector);
    Arc::new(client)
}

/// Replaces `pool`'s connections whenever the trust bundle changes.
pub async fn follow_bundles(pool: Arc<UpstreamPool>, shared: Arc<Shared>) {
    let mut rx = shared.bundles.subscribe();
    while rx.changed().await.is_ok() {
        pool.reset();
    }
}

/// Serves the app's HTTP/1.1 on one local connection until it is done or the proxy closes.
pub async fn serve(
    app: TcpStream,
    listener: Arc<str>,
    pool: Arc<UpstreamPool>,
    shared: Arc<Shared>,
) -> Result<(), hyper::Error> {
    let svc_shared = shared.clone();
    let requests = Arc::new(RequestMetrics::new(&shared.metrics, &listener, "outbound"));
    let svc = service_fn(move |req| {
        let (pool, shared, requests) = (pool.clone(), svc_shared.clone(), requests.clone());
        async move { Ok::<_, Infallible>(forward(req, &requests, &pool, &shared).await) }
    });
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.request_header_timeout)
        .max_buf_size(shared.limits.max_request_header_bytes);
    let conn = http1.serve_connection(TokioIo::new(app), svc);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        () = shared.lifecycle.reached(Phase::Closing) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            Ok(())
        }
    }
}

async fn forward(
    mut req: Request<Incoming>,
    requests: &RequestMetrics,
    pool: &UpstreamPool,
    shared: &Shared,
) -> Response<Body> {
    let upstream = &*pool.connector.upstream;
    let log = RequestLog::new(requests, upstream, req.method(), req.uri().path());
    let Some(uri) = pool.target(req.uri()) else {
        log.answered(StatusCode::BAD_REQUEST, "-", "-", "bad target");
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "request target cannot be forwarded",
            json!({}),
        );
    };
    strip_hop_by_hop(req.headers_mut());
    *req.uri_mut() = uri;
    let max = shared.limits.max_request_body_bytes;
    let answer = match limit_body(req, max) {
        Ok(req) => {
            tokio::time::timeout(shared.limits.response_timeout, pool.client().request(req)).await
        }
        Err(BodyTooLarge) => return log.refuse("-", "-", too_large(max)),
    };
    let refusal = match answer {
        Ok(Ok(mut resp)) => {
            strip_hop_by_hop(resp.headers_mut());
            log.answered(resp.status(), "-", "-", "");
            return resp.map(streamed);
        }
        Ok(Err(e)) if is_body_limit(&e) => too_large(max),
        Ok(Err(e)) if refused_by_peer(&e) => {
            let me = shared
                .store
                .current()
                .map_or_else(|| "this sidecar".to_owned(), |id| id.id().to_string());
            (
                StatusCode::FORBIDDEN,
                "peer_denied",
                format!("{upstream} refused {me}: its policy does not allow this caller"),
            )
        }
        Ok(Err(e)) if e.is_connect() => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            (StatusCode::BAD_GATEWAY, "upstream_unavailable", why)
        }
        Ok(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("{upstream}: {e}"),
        ),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "{upstream} did not answer within {:?}",
                shared.limits.response_timeout
            ),
        ),
    };
    log.refuse("-", "-", refusal)
}

/// Whether the peer's policy refused this sidecar: the `PermissionDenied` that
/// [`UpstreamIo`] makes of its TLS `access_denied` alert, somewhere in the client error's
/// sources (TLS 1.3 delivers the alert after this side's handshake is done, so it surfaces
/// as the HTTP/2 handshake failing, not as a connect error).
fn refused_by_peer(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        cause = err.source();
    }
    false
}
