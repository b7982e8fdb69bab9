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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

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

/// Connections held per client address.
#[derive(Debug)]
struct IpSlots {
    held: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One connection's share of its address's slots, given back on drop.
#[derive(Debug)]
struct IpSlot {
    slots: Arc<IpSlots>,
    ip: IpAddr,
}

impl IpSlots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

fn refused(service: &CaService, reason: &'static str) {
    service
        .metrics
        .connections_refused
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Accepts until `stopped` changes; every connection runs in its own task.
pub(super) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: Arc<CaService>,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_ip = Arc::new(IpSlots {
        held: Mutex::new(HashMap::new()),
        max: service.config.limits.max_connections_per_ip,
    });
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        // Over a cap: close at once, before any TLS work.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused(&service, "max_connections");
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip()) else {
            refused(&service, "per_ip_limit");
            continue;
        };
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let _held = (permit, slot);
            serve_one(sock, peer, acceptor, service).await;
        });
    }
}

/// Requests in flight on one connection, and when it last had none.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    served: AtomicUsize,
    quiet_since: Mutex<Instant>,
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection must be closed if nothing changes: the first-request deadline
    /// before any request, the idle deadline after, none while a request is in flight.
    fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
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
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return handshake_refused(&service, peer, ward_tls::handshake_failure(&e)),
        Err(_) => return handshake_refused(&service, peer, ("handshake_timeout", String::new())),
    };
    let limits = service.config.limits;
    let conn_info = Arc::new(api::ConnInfo::new(
        peer,
        tls.get_ref().1.peer_certificates(),
    ));
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        served: AtomicUsize::new(0),
        quiet_since: Mutex::new(Instant::now()),
    });
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
