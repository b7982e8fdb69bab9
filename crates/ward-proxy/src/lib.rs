//! ward-proxy: the sidecar. It terminates mTLS for its app (inbound), originates mTLS for it
//! (outbound), authorizes every inbound peer by SPIFFE ID against the operators' policy, and
//! reloads policy and identity without a restart.
//!
//! [`start`] loads the config's policy and identity (refusing to start on either error), binds
//! every listener, and spawns the accept loops, the reload task and the admin server; it
//! returns a [`RunningProxy`] whose addresses tests read back when binding port 0. [`run`]
//! wraps it for the binary: serve until the shutdown future resolves, then drain. The public
//! surface is what users of the library need ([`Config`], [`start`], [`run`], [`cli`] and
//! the types they return); everything else is private to the crate, so the dead-code lints
//! see it.

#![forbid(unsafe_code)]

mod admin;
pub mod cli;
pub mod config;
mod conn;
mod copy;
mod error;
mod http;
mod identity_config;
mod inbound;
mod key_exchange;
mod limits;
mod metrics;
mod outbound;
mod pipe;
mod policy_store;
pub mod proxy_protocol;
mod reload;
mod svid_source;
pub mod transparent;
mod workload;
mod workload_config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use ward_identity::IdPattern;
use ward_tls::{BundleStore, CertStore, TrustBundles};

pub use config::Config;
pub use error::ProxyError;
pub use limits::Limits;
pub use metrics::Metrics;
pub use svid_source::IdentityError;

use crate::admin::AdminState;
use crate::conn::ConnRecord;
use crate::inbound::{InboundListener, PolicyAuthorizer};
use crate::metrics::ConnLabels;
use crate::outbound::OutboundListener;
use crate::policy_store::PolicyStore;
use crate::svid_source::IdentitySource;
use ward_daemon::{Gate, Lifecycle, PerWorker, Workers};

/// State every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Shutdown phase and connection count.
    pub lifecycle: Lifecycle,
    /// Connection limits.
    pub limits: Limits,
    /// Policy in force.
    pub policy: PolicyStore,
    /// The connection cap, across all listeners.
    pub gate: Gate,
    /// Trust bundles in force; connections watch its revocation list.
    pub bundles: BundleStore,
    /// This workload's identity (HTTP mode names it in `x-forwarded-client-cert`).
    pub store: Arc<CertStore>,
    /// The threads connections are served on.
    pub workers: Arc<Workers>,
}

/// A started proxy.
#[derive(Debug)]
pub struct RunningProxy {
    /// Bound inbound listeners, by name.
    pub inbound: Vec<(String, SocketAddr)>,
    /// Bound outbound listeners, by name.
    pub outbound: Vec<(String, SocketAddr)>,
    /// Bound admin address.
    pub admin: SocketAddr,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    reload: Arc<Notify>,
    lifecycle: Lifecycle,
    grace: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// Re-reads policy and identity files now (what SIGHUP does).
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Stops accepting, gives open connections the grace period, closes the rest.
    pub async fn shutdown(self) {
        self.lifecycle.shutdown(self.grace).await;
        for task in &self.tasks {
            task.abort();
        }
        // Wait until every task is gone, so what they own (the Workload API socket file) is
        // cleaned up by the time this returns.
        // Connections still open after the grace period end with their worker's runtime,
        // which `stop_workers_when_dropped` stops as it is aborted here.
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the proxy and serves until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
    let proxy = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: no longer accepting; draining open connections");
    proxy.shutdown().await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn bind(name: &str, addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind {
            name: name.to_owned(),
            addr,
            source,
        })
}

fn local_addr(l: &TcpListener, name: &str, addr: SocketAddr) -> Result<SocketAddr, ProxyError> {
    l.local_addr().map_err(|source| ProxyError::Bind {
        name: name.to_owned(),
        addr,
        source,
    })
}

/// Loads everything, binds every listener and spawns the proxy's tasks.
pub async fn start(config: Config) -> Result<RunningProxy, ProxyError> {
    let metrics = Arc::new(Metrics::default());
    let listeners = config.policy_listeners();
    let policy_text = ward_yaml::read_file(&config.policy)?;
    let policy = PolicyStore::new(policy_store::compile(
        &config.policy,
        &policy_text,
        &listeners,
    )?);

    let store = Arc::new(CertStore::new(
        config.trust_domain.clone(),
        BundleStore::new(TrustBundles::default()),
    ));
    let mut source =
        IdentitySource::from_config(&config.identity, &config.trust_domain, metrics.source());

    let lifecycle = Lifecycle::default();
    let workers = Arc::new(
        Workers::start(config.workers, "ward-conn").map_err(|source| ProxyError::Workers {
            count: config.workers,
            source,
        })?,
    );
    let shared = Arc::new(Shared {
        metrics: metrics.clone(),
        lifecycle: lifecycle.clone(),
        limits: config.limits,
        policy: policy.clone(),
        gate: Gate::new(config.limits.max_connections),
        bundles: store.bundles().clone(),
        store: store.clone(),
        workers: workers.clone(),
    });

    let resumption = if config.session_resumption {
        ward_tls::Resumption::On
    } else {
        ward_tls::Resumption::Off
    };
    // Everything that can fail (TLS configs, binds) happens before anything is spawned, so a
    // failed later bind leaves no accept loop running on an earlier listener.
    let mut inbound = Vec::new();
    let mut inbound_ready = Vec::new();
    for l in &config.inbound {
        let authorizer = Arc::new(PolicyAuthorizer::new(&l.name, policy.clone()));
        let http = l.protocol == config::Protocol::Http;
        let alpn: &[&[u8]] = if http { &[b"h2", b"http/1.1"] } else { &[] };
        let tls =
            ward_tls::server_config(&store, Some(authorizer), alpn, resumption, &l.key_exchange)?;
        let socket = bind(&l.name, l.listen).await?;
        inbound.push((l.name.clone(), local_addr(&socket, &l.name, l.listen)?));
        let listener = Arc::new(InboundListener {
            config: l.clone(),
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            app: http.then(|| {
                PerWorker::new(workers.len(), || http::inbound::app_client(&config.limits))
            }),
            app_authority: l.forward.parse().ok(),
        });
        inbound_ready.push((socket, listener));
    }
    let mut outbound = Vec::new();
    let mut outbound_ready = Vec::new();
    for l in &config.outbound {
        // Outbound HTTP speaks HTTP/2 only, so concurrent requests wait for one connection
        // instead of each opening its own; the upstream (a ward HTTP listener) offers h2.
        // Its pooled connections are long-lived, so they do not resume sessions.
        let (alpn, resumption): (&[&[u8]], _) = if l.protocol == config::Protocol::Http {
            (&[b"h2"], ward_tls::Resumption::Off)
        } else {
            (&[], resumption)
        };
        let connector = |pattern: &IdPattern| -> Result<TlsConnector, ProxyError> {
            let tls = ward_tls::client_config(
                &store,
                vec![pattern.clone()],
                alpn,
                resumption,
                &l.key_exchange,
            )?;
            Ok(TlsConnector::from(Arc::new(tls)))
        };
        // A transparent listener needs one connector per ID it may expect (by destination).
        let routes = match &l.transparent {
            Some(t) => t
                .patterns()
                .iter()
                .map(&connector)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let socket = bind(&l.name, l.listen).await?;
        outbound.push((l.name.clone(), local_addr(&socket, &l.name, l.listen)?));
        let mut listener = OutboundListener::new(
            l.clone(),
            connector(&l.server_id)?,
            config.limits,
            metrics.clone(),
            workers.len(),
        );
        listener.routes = routes;
        let listener = Arc::new(listener);
        outbound_ready.push((socket, listener));
    }
    let admin_socket = bind("admin", config.admin).await?;
    let admin = local_addr(&admin_socket, "admin", config.admin)?;
    let workload_api = config
        .workload_api
        .as_ref()
        .map(workload::prepare)
        .transpose()?;

    // Only now, with every listener bound and everything local checked, is the identity
    // obtained: enrolling spends a single-use join token, which must not be lost to a port
    // that is taken or a socket path in use.
    let identity = match source.refresh(&store, true).await {
        Ok(id) => id,
        Err(e) if source.required_at_start() => return Err(ProxyError::Identity(e)),
        Err(e) => {
            tracing::warn!(error = %e, "no identity yet; starting unready and retrying");
            None
        }
    };
    if let Some(id) = &identity {
        metrics.identity_expiry.set(id.leaf().not_after);
    }

    let mut tasks = Vec::new();
    for (socket, listener) in inbound_ready {
        tasks.push(tokio::spawn(inbound::serve(
            socket,
            listener,
            shared.clone(),
        )));
    }
    for (socket, listener) in outbound_ready {
        if let Some(pool) = &listener.pool {
            tasks.push(tokio::spawn(http::outbound::follow_bundles(
                pool.clone(),
                shared.clone(),
            )));
        }
        tasks.push(tokio::spawn(outbound::serve(
            socket,
            listener,
            shared.clone(),
        )));
    }
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        policy: policy.clone(),
        store: store.clone(),
        lifecycle: lifecycle.clone(),
    });
    tasks.push(tokio::spawn(admin::serve(admin_socket, admin_state)));
    // `workload_api` is refused by the config parser unless `identity: ca`, so a Workload API
    // always has the CA source's client.
    if let (Some(spawn), Some(client)) = (workload_api, source.ca_client()) {
        tasks.extend(spawn(workload::Spawn {
            client,
            store: store.clone(),
            trust_domain: config.trust_domain.clone(),
            metrics: &metrics,
            lifecycle: lifecycle.clone(),
        }));
    }

    tasks.push(tokio::spawn(stop_workers_when_dropped(workers.clone())));
    let reload = Arc::new(Notify::new());
    tasks.push(tokio::spawn(reload::reload_loop(
        config.clone(),
        source,
        store,
        policy,
        metrics.clone(),
        reload.clone(),
        policy_text,
    )));
    tracing::info!(
        id = %identity.as_ref().map_or("-".to_owned(), |i| i.id().to_string()),
        inbound = ?inbound,
        outbound = ?outbound,
        %admin,
        "ward-proxy started"
    );
    Ok(RunningProxy {
        inbound,
        outbound,
        admin,
        metrics,
        reload,
        lifecycle,
        grace: config.limits.shutdown_grace,
        tasks,
    })
}

/// Stops the connection workers when this task ends: aborted by [`RunningProxy::shutdown`],
/// or dropped with the runtime that started the proxy (as its other tasks are), so the
/// proxy's connections never outlive it on their threads.
async fn stop_workers_when_dropped(workers: Arc<Workers>) {
    struct Guard(Arc<Workers>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _guard = Guard(workers);
    std::future::pending::<()>().await;
}

/// The proxy's accept loop (ward-daemon's, under the proxy-wide cap): a connection over the
/// cap is closed at once and counted; an admitted one gets its record and is served by
/// `handler` on the next connection worker.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: &str,
    direction: &'static str,
    shared: Arc<Shared>,
    handler: F,
) where
    F: Fn(TcpStream, Arc<Shared>, ConnRecord) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (lifecycle, gate) = (shared.lifecycle.clone(), shared.gate.clone());
    let labels = ConnLabels {
        listener: name.to_owned(),
        direction,
    };
    ward_daemon::accept(
        listener,
        name,
        &lifecycle,
        &gate,
        |_, _| {
            shared.metrics.refused.get_or_create(&labels).inc();
        },
        |sock, _, admission| {
            let record = ConnRecord::open(shared.metrics.clone(), name, direction, admission);
            let (handler, conn_shared) = (handler.clone(), shared.clone());
            shared
                .workers
                .spawn_tcp(sock, move |sock| handler(sock, conn_shared, record));
        },
    )
    .await;
}
