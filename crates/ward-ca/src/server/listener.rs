//! The CA's accept loop and the life of one client connection.
//!
//! Client certificates are optional on the CA (enrollment has none yet), so anonymous peers
//! reach it and must not be able to hold its slots; after a lifetime without renewals the
//! whole mesh would lose its identities. So every connection is bounded three ways beyond
//! the global cap: one client IP holds at most `limits.max_connections_per_ip` at once
//! (checked before the TLS handshake, which has its own deadline); the first complete request
//! head must arrive within `limits.request_timeout` of the handshake (a silent peer, half an
//! HTTP/2 preface or a preface without a request is closed then); and a connection with no
//! request in flight for `limits.idle_timeout` is closed (gracefully: HTTP/2 gets GOAWAY).
//! The accept loop, the caps and the drain are ward-daemon's, shared with the sidecar: on
//! shutdown the CA stops accepting, lets requests in flight finish (new ones on open
//! connections are refused), and closes what is left after the grace period.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use ward_daemon::{Gate, Lifecycle, Phase, Refusal};

use super::metrics::ReasonLabel;
use super::{api, handshake_refused, CaService};

/// Open connections the CA serves at once.
const MAX_CONNECTIONS: usize = 4096;
/// Longest a client connection is kept, however busy.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// Time to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection being closed gets to finish what is in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Accepts until the lifecycle drains; every connection runs in its own task.
pub(super) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: Arc<CaService>,
    lifecycle: Lifecycle,
) {
    let gate = Gate::new(MAX_CONNECTIONS).per_ip(service.config.limits.max_connections_per_ip);
    let refused = |refusal: Refusal, _| {
        service
            .metrics
            .connections_refused
            .get_or_create(&ReasonLabel {
                reason: refusal.as_str(),
            })
            .inc();
    };
    let serve = |sock, peer, admission| {
        let (acceptor, service, lifecycle) = (acceptor.clone(), service.clone(), lifecycle.clone());
        async move {
            let _held = admission;
            serve_one(sock, peer, acceptor, service, lifecycle).await;
        }
    };
    ward_daemon::accept_loop(listener, "api", &lifecycle, &gate, refused, serve).await;
}

/// Requests in flight on one connection, and when it last had none.
#[derive(Debug)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    served: AtomicUsize,
    quiet_since: Mutex<Instant>,
}

/// Marks a request in flight until dropped.
pub(super) struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection that has served nothing yet, quiet since now.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            quiet_since: Mutex::new(Instant::now()),
        })
    }

    /// Counts a request until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection must be closed if nothing changes: the first-request deadline
    /// before any request, the idle deadline after, none while a request is in flight.
    pub(super) fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = *self.quiet_since.lock().unwrap_or_else(|p| p.into_inner());
        Some(if self.served.load(Ordering::SeqCst) == 0 {
            since + first_request
        } else {
            since + idle
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.quiet_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

async fn serve_one(
    sock: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    service: Arc<CaService>,
    lifecycle: Lifecycle,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return handshake_refused(&service, peer, ward_tls::handshake_failure(&e)),
        Err(_) => return handshake_refused(&service, peer, ("handshake_timeout", String::new())),
    };
    let limits = service.settings.get().limits;
    let conn_info = Arc::new(api::ConnInfo::new(
        peer,
        tls.get_ref().1.peer_certificates(),
    ));
    let activity = Activity::new();
    let svc = {
        let activity = activity.clone();
        service_fn(move |req| {
            let in_flight = activity.begin();
            let (service, conn_info) = (service.clone(), conn_info.clone());
            async move {
                let resp = api::handle(req, &service, &conn_info).await;
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The deadlines below cover request heads (the first within request_timeout, later ones
    // within idle_timeout of the previous answer); hyper's own header timer would cut idle
    // keep-alive connections at its value instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let end_of_life = Instant::now() + MAX_CONNECTION_LIFETIME;
    loop {
        let deadline = activity
            .deadline(limits.request_timeout, limits.idle_timeout)
            .map_or(end_of_life, |d| d.min(end_of_life));
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {}
            () = lifecycle.reached(Phase::Draining) => {
                // Finish what is in flight, take nothing new; cut at Closing.
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = lifecycle.reached(Phase::Closing) => {}
                }
                return;
            }
        }
        let still_due = activity
            .deadline(limits.request_timeout, limits.idle_timeout)
            .is_some_and(|d| d <= Instant::now());
        if still_due || Instant::now() >= end_of_life {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
            return;
        }
    }
}
