//! Serving the Workload API on its Unix socket: callers admitted at accept by their kernel
//! credentials, then HTTP/2 connections whose every call is checked at the door.
//!
//! At accept the caller's uid and gid, as the kernel recorded them when it connected
//! (SO_PEERCRED), decide everything: an allowed caller gets one of [`MAX_CONNECTIONS`] slots
//! (at most [`MAX_PER_UID`] per uid) and is served under the deadlines and budgets of
//! [`crate::limits`]; a caller that is not allowed takes no such slot. It is answered
//! `PermissionDenied` to its first call from a small pool of its own ([`MAX_REFUSING`]
//! connections, one call each, [`REFUSAL_DEADLINE`] at most, its request never kept) and
//! closed; when that pool is full it is closed at once. Every call must also carry the
//! `workload.spiffe.io: true` header (which a browser or a confused HTTP client cannot be made
//! to send) or it is refused with `InvalidArgument`. Nothing the caller sends can change who
//! it is taken to be.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::codegen::Service;
use tonic::Status;

use crate::config::WorkloadApiConfig;
use crate::limits::*;
use crate::metrics::{ApiMetrics, CallLabels};
use crate::normalize::Normalize;
use crate::pb::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use crate::resets::Watched;
use crate::service::WorkloadApi;
use crate::socket::SocketGuard;

/// The header every Workload API call carries.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// The methods of the service, the only values the `method` label takes besides `unknown`.
const METHODS: [&str; 5] = [
    "FetchX509SVID",
    "FetchX509Bundles",
    "FetchJWTSVID",
    "FetchJWTBundles",
    "ValidateJWTSVID",
];

/// The method a request path names, from the closed set (a caller chooses the path).
fn method_of(path: &str) -> &'static str {
    path.strip_prefix("/SpiffeWorkloadAPI/")
        .and_then(|m| METHODS.iter().find(|known| **known == m))
        .copied()
        .unwrap_or("unknown")
}

/// The door: whether a call may reach the service.
fn admit(req: &hyper::Request<Incoming>, refused: Option<&str>) -> Result<(), Status> {
    if req
        .headers()
        .get(SECURITY_HEADER)
        .is_none_or(|v| v.as_bytes() != b"true")
    {
        return Err(Status::invalid_argument(
            "security header missing from request (workload.spiffe.io: true)",
        ));
    }
    refused.map_or(Ok(()), |why| Err(Status::permission_denied(why)))
}

fn count_call(metrics: &ApiMetrics, method: &'static str, verdict: &Result<(), Status>) {
    let result = match verdict {
        Ok(()) => "admitted",
        Err(s) if s.code() == tonic::Code::InvalidArgument => "invalid_argument",
        Err(_) => "permission_denied",
    };
    metrics
        .calls
        .get_or_create(&CallLabels { method, result })
        .inc();
}

/// Who calls, as the kernel recorded it at connect time.
enum Caller {
    /// A uid or gid of the config's.
    Allowed(u32),
    /// Anyone else (`uid` when the kernel said who), and why they are refused.
    Refused { uid: Option<u32>, why: String },
}

impl Caller {
    fn of(stream: &UnixStream, config: &WorkloadApiConfig) -> Self {
        match stream.peer_cred() {
            Ok(cred) if config.allows(cred.uid(), cred.gid()) => Self::Allowed(cred.uid()),
            Ok(cred) => Self::Refused {
                uid: Some(cred.uid()),
                why: format!(
                    "uid {} / gid {} may not use this Workload API",
                    cred.uid(),
                    cred.gid()
                ),
            },
            Err(e) => Self::Refused {
                uid: None,
                why: format!("cannot read the caller's credentials: {e}"),
            },
        }
    }

    fn uid(&self) -> Option<u32> {
        match self {
            Self::Allowed(uid) => Some(*uid),
            Self::Refused { uid, .. } => *uid,
        }
    }
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
    let grpc = SpiffeWorkloadApiServer::from_arc(api).max_decoding_message_size(MAX_REQUEST);
    let uids = UidSlots::default();
    let process_budget = Budget::new(PROCESS_BUDGET);
    let mut served = JoinSet::new();
    let mut refusing = JoinSet::new();
    let mut logged = std::collections::HashSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = served.join_next(), if !served.is_empty() => continue,
            Some(_) = refusing.join_next(), if !refusing.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Workload API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let caller = Caller::of(&stream, &config);
        let uid = caller.uid();
        // Every refusal is counted; each kind is logged once per uid (a bounded set), so a
        // caller in a loop cannot flood the log.
        let mut refused = |reason: &'static str, why: &dyn std::fmt::Display| {
            metrics.closed(reason);
            if logged.len() < 256 && logged.insert((uid, reason)) {
                let uid = uid.map_or_else(|| "unknown".to_owned(), |u| u.to_string());
                tracing::warn!(%uid, reason, "Workload API connection refused: {why} (logged once per uid)");
            }
        };
        match caller {
            Caller::Refused { why, .. } if refusing.len() >= MAX_REFUSING => {
                refused("not_allowed_closed", &why);
            }
            Caller::Refused { why, .. } => {
                refused("not_allowed", &why);
                refusing.spawn(refuse(stream, why, metrics.clone()));
            }
            Caller::Allowed(_) if served.len() >= MAX_CONNECTIONS => {
                refused(
                    "max_connections",
                    &format!("{MAX_CONNECTIONS} connections are open"),
                );
            }
            Caller::Allowed(uid) => {
                let Some(slot) = uids.take(uid) else {
                    refused(
                        "per_uid_limit",
                        &format!("this uid holds {MAX_PER_UID} connections"),
                    );
                    continue;
                };
                let conn = Connection {
                    grpc: grpc.clone(),
                    metrics: metrics.clone(),
                    budget: Budget::new(CONNECTION_BUDGET),
                    process_budget: process_budget.clone(),
                };
                served.spawn(async move {
                    conn.serve(stream).await;
                    drop(slot);
                });
            }
        }
    }
    served.shutdown().await;
    refusing.shutdown().await;
    drop(listener);
    drop(guard);
    tracing::info!("Workload API stopped; socket removed");
}

/// Lets a refused call's request finish arriving, reading and discarding at most
/// [`REFUSAL_DRAIN_BYTES`] for at most [`REFUSAL_DRAIN`]: nothing is kept. A client still
/// sending when the answer comes gets its stream reset, which some (curl) report as a framing
/// error instead of the status; a request that does not end that soon is answered anyway.
async fn drain_briefly(mut body: Incoming) {
    let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > REFUSAL_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

fn http2() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_header_list_size(16 * 1024);
    builder
}

/// Answers the first call of a caller that is not allowed, without keeping its request, then
/// closes; [`REFUSAL_DEADLINE`] bounds the whole connection.
async fn refuse(stream: UnixStream, why: String, metrics: ApiMetrics) {
    let metrics_for_resets = metrics.clone();
    let answered = Arc::new(Notify::new());
    let done = answered.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let verdict = admit(&req, Some(&why));
        count_call(&metrics, method_of(req.uri().path()), &verdict);
        let status = verdict
            .err()
            .unwrap_or_else(|| Status::permission_denied("refused"));
        let done = done.clone();
        async move {
            drain_briefly(req.into_body()).await;
            done.notify_one();
            Ok::<_, std::convert::Infallible>(status.into_http::<tonic::body::Body>())
        }
    });
    let mut builder = http2();
    builder.max_concurrent_streams(1);
    let io = Normalize::new(Watched::new(stream, metrics_for_resets));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = answered.notified() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    })
    .await;
}

/// What an allowed connection is served with.
struct Connection {
    grpc: SpiffeWorkloadApiServer<WorkloadApi>,
    metrics: ApiMetrics,
    budget: Budget,
    process_budget: Budget,
}

impl Connection {
    /// Serves one allowed caller until it leaves, waits [`FIRST_CALL`] without calling, or
    /// stays [`IDLE`] with no call open.
    async fn serve(self, stream: UnixStream) {
        let open = OpenCalls::new();
        let mut calls = open.watch();
        let Self {
            grpc,
            metrics,
            budget,
            process_budget,
        } = self;
        let counting = metrics.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let verdict = admit(&req, None);
            count_call(&counting, method_of(req.uri().path()), &verdict);
            let call = open.open();
            let (budget, process_budget) = (budget.clone(), process_budget.clone());
            let mut grpc = grpc.clone();
            async move {
                let response = match verdict {
                    Ok(()) => {
                        let req = req.map(|b| BudgetBody::new(b, budget, process_budget));
                        grpc.call(req).await?
                    }
                    // Answered at once: the request is never kept.
                    Err(status) => {
                        drain_briefly(req.into_body()).await;
                        status.into_http()
                    }
                };
                Ok::<_, std::convert::Infallible>(response.map(move |body| {
                    body.map_frame(move |frame| {
                        let _open = &call;
                        frame
                    })
                }))
            }
        });
        let mut builder = http2();
        builder.max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
        let io = Normalize::new(Watched::new(stream, metrics.clone()));
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut deadline = Some((Instant::now() + FIRST_CALL, "first_call_timeout"));
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "Workload API connection ended");
                    }
                    return;
                }
                () = async {
                    match deadline {
                        Some((at, _)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((_, reason)) = deadline.take() {
                        metrics.closed(reason);
                        tracing::debug!(reason, "Workload API connection closed");
                    }
                    break;
                }
                changed = calls.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    deadline = (*calls.borrow_and_update() == 0)
                        .then(|| (Instant::now() + IDLE, "idle_timeout"));
                }
            }
        }
        // No call is open: say goodbye, and do not wait on a caller that ignores it.
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, conn).await;
    }
}
