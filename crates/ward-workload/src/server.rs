//! Serving the Workload API on its Unix socket: HTTP/2 connections, each admitted call
//! checked at the door.
//!
//! Every call must carry the `workload.spiffe.io: true` header (which a browser or a confused
//! HTTP client cannot be made to send) or it is refused with `InvalidArgument`; then the
//! caller's uid and gid, as the kernel recorded them when it connected (SO_PEERCRED), must be
//! allowed or it is refused with `PermissionDenied`. Nothing the caller sends can change who
//! it is taken to be.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixListener;
use tokio::task::JoinSet;
use tonic::codegen::Service;
use tonic::Status;

use crate::config::WorkloadApiConfig;
use crate::metrics::{ApiMetrics, CallLabels};
use crate::pb::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use crate::service::WorkloadApi;
use crate::socket::SocketGuard;

/// Connections held at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Concurrent calls (streams) per connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;
/// The largest request message (requests are an audience list or one token).
const MAX_REQUEST: usize = 64 * 1024;
/// How long a refused call's request may take to arrive before the refusal goes out anyway.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The header every Workload API call carries.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The door: whether a call may reach the service.
fn admit(
    req: &hyper::Request<Incoming>,
    allowed: Result<(), String>,
) -> (String, Result<(), Status>) {
    let method = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_owned();
    if req
        .headers()
        .get(SECURITY_HEADER)
        .is_none_or(|v| v.as_bytes() != b"true")
    {
        return (
            method,
            Err(Status::invalid_argument(
                "security header missing from request (workload.spiffe.io: true)",
            )),
        );
    }
    (method, allowed.map_err(Status::permission_denied))
}

/// Serves `api` on `listener` until `shutdown` resolves; then closes every connection and
/// removes the socket (through `guard`).
pub async fn serve(
    listener: UnixListener,
    guard: SocketGuard,
    config: WorkloadApiConfig,
    api: Arc<WorkloadApi>,
    metrics: ApiMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let grpc = SpiffeWorkloadApiServer::from_arc(api).max_decoding_message_size(MAX_REQUEST);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Workload API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if connections.len() >= MAX_CONNECTIONS {
            tracing::warn!(
                max = MAX_CONNECTIONS,
                "Workload API connection refused: too many open"
            );
            continue;
        }
        // Who is calling, as the kernel saw it at connect time.
        let allowed = match stream.peer_cred() {
            Ok(cred) if config.allows(cred.uid(), cred.gid()) => Ok(()),
            Ok(cred) => Err(format!(
                "uid {} / gid {} may not use this Workload API",
                cred.uid(),
                cred.gid()
            )),
            Err(e) => Err(format!("cannot read the caller's credentials: {e}")),
        };
        let grpc = grpc.clone();
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (method, verdict) = admit(&req, allowed.clone());
            let result = match &verdict {
                Ok(()) => "admitted",
                Err(s) if s.code() == tonic::Code::InvalidArgument => "invalid_argument",
                Err(_) => "permission_denied",
            };
            metrics
                .calls
                .get_or_create(&CallLabels { method, result })
                .inc();
            let mut grpc = grpc.clone();
            async move {
                match verdict {
                    Ok(()) => grpc.call(req).await,
                    Err(status) => {
                        // Read the (small) request before refusing: answering while a client
                        // still uploads makes HTTP/2 reset the stream, which some clients
                        // (curl) report as a framing error instead of the status.
                        let body = http_body_util::Limited::new(req.into_body(), MAX_REQUEST);
                        let _ = tokio::time::timeout(DRAIN, body.collect()).await;
                        Ok::<_, Infallible>(status.into_http())
                    }
                }
            }
        });
        connections.spawn(async move {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Workload API connection ended");
            }
        });
    }
    connections.shutdown().await;
    drop(listener);
    drop(guard);
    tracing::info!("Workload API stopped; socket removed");
}
