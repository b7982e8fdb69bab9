//! The CA's small public listeners, OIDC discovery and the federation bundle endpoint, served
//! one way: HTTP/1.1 over plain TCP (behind an ingress) or TLS without client certificates,
//! at most [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's backlog), 10 s
//! for the TLS handshake and for each request head, a minute per connection (a fetch is one or
//! two small GETs). Their answers are public JSON documents ([`respond`]).

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
use tokio_rustls::TlsAcceptor;

/// Connections served at once by each public listener.
pub const MAX_CONNECTIONS: usize = 256;
/// Deadline for a TLS handshake and for each request head.
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

async fn serve_connection<IO, F, Fut>(io: IO, answer: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let answer = Arc::new(answer);
    let svc = service_fn(move |req: Request<Incoming>| {
        let answer = answer.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
}

/// Serves `answer` on `listener` (through `tls` when given) until the task is aborted;
/// `name` names the listener in logs.
pub(super) async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    name: &'static str,
    answer: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "{name}: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, answer) = (tls.clone(), answer.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, answer).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await
                    {
                        serve_connection(stream, answer).await;
                    }
                }
            }
            drop(permit);
        });
    }
}
