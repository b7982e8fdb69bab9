//! The CA's small public listeners, OIDC discovery, the federation bundle endpoint and the
//! ops listener, served one way: HTTP/1.1 over plain TCP (behind an ingress) or TLS without
//! client certificates. Their clients are anonymous, so each listener admits connections as
//! the API does, through its own pool: at most [`MAX_CONNECTIONS`] at once and
//! `limits.max_connections_per_ip` from one address (more are closed at accept and counted
//! in `ward_ca_connections_refused_total`), 10 s for the TLS handshake, the first request
//! head within `limits.request_timeout`, no more than `limits.idle_timeout` with nothing in
//! flight, and a minute per connection (a fetch is one or two small GETs). One address
//! holding idle connections therefore starves none of them. Their answers are public JSON
//! documents ([`respond`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use ward_daemon::{Gate, Lifecycle, Refusal};

use super::listener::Activity;
use super::metrics::ReasonLabel;
use super::CaService;

/// Connections served at once by each public listener.
pub const MAX_CONNECTIONS: usize = 256;
/// Deadline for a TLS handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection lives.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// A JSON response, cacheable by anyone for `cache` seconds when given.
pub(super) fn respond(
    status: StatusCode,
    body: impl Into<Bytes>,
    cache: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = cache {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("public, max-age={secs}")) {
            headers.insert(CACHE_CONTROL, v);
        }
    }
    resp
}

async fn serve_connection<IO, F, Fut>(io: IO, answer: F, limits: crate::config::limits::CaLimits)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let answer = Arc::new(answer);
    let activity = Activity::new();
    let svc = {
        let activity = activity.clone();
        service_fn(move |req: Request<Incoming>| {
            let (answer, in_flight) = (answer.clone(), activity.begin());
            async move {
                let resp = answer(req).await;
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The deadlines below cover request heads; hyper's own timer is left off.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let end_of_life = Instant::now() + CONNECTION_LIFETIME;
    loop {
        let due = || {
            activity
                .deadline(limits.request_timeout, limits.idle_timeout)
                .map_or(end_of_life, |d| d.min(end_of_life))
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(due()) => {}
        }
        if due() <= Instant::now() {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
            return;
        }
    }
}

/// Serves `answer` on `listener` (through `tls` when given) until the task is aborted, with
/// the caps and deadlines of `ca`'s limits; `name` names the listener in logs.
pub(super) async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    name: &'static str,
    ca: &CaService,
    answer: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let limits = ca.settings.get().limits;
    let gate = Gate::new(MAX_CONNECTIONS).per_ip(ca.config.limits.max_connections_per_ip);
    let refused = |refusal: Refusal, _| {
        ca.metrics
            .connections_refused
            .get_or_create(&ReasonLabel {
                reason: refusal.as_str(),
            })
            .inc();
    };
    // Its own lifecycle: the listener is aborted with the daemon, not drained (the ops
    // listener answers `/readyz` 503 while the API drains).
    let lifecycle = Lifecycle::default();
    let serve = |stream, _, admission| {
        let (tls, answer) = (tls.clone(), answer.clone());
        async move {
            let _held = admission;
            match tls {
                None => serve_connection(stream, answer, limits).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await
                    {
                        serve_connection(stream, answer, limits).await;
                    }
                }
            }
        }
    };
    ward_daemon::accept_loop(listener, name, &lifecycle, &gate, refused, serve).await;
}
