//! `ward-ca serve`: the enrollment daemon.
//!
//! [`start`] loads the CA directory, opens the state database, issues the CA's own serving
//! SVID (`spiffe://<td>/ward/ca`, plus the configured DNS names; key in memory only, renewed
//! at half its lifetime), binds the listener and serves HTTP/1.1 and HTTP/2 over TLS 1.3.
//! Client certificates are requested but optional: enrollment has none yet, renewal and
//! revocation require one (checked per endpoint in [`api`]). How long and how many
//! connections anyone may hold is [`listener`]'s business.

pub mod api;
pub(crate) mod attest;
pub mod bundle;
pub mod bundle_endpoint;
mod caller;
pub mod error;
mod federation;
mod follow;
pub mod foreign;
mod health;
mod http;
pub(crate) mod jwks_fetch;
mod jwt;
mod listener;
pub mod metrics;
pub mod oidc;
mod ops;
mod own_identity;
mod public;
pub mod ratelimit;
mod replica;
pub mod requests;
mod revoke;
pub mod settings;
pub mod upkeep;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use ward_daemon::Lifecycle;
use ward_tls::{BundleStore, CertStore};

use crate::authority::Authority;

use crate::authority::error::CaError;
use crate::config::{CaConfig, CaKeys};
use crate::keys::db::DbCa;
use crate::keys::kek::Kek;
use crate::server::attest::KubernetesAttestor;
use crate::state::Store;

use self::bundle::BundleCache;
use self::metrics::CaMetrics;
use self::ratelimit::RateLimiter;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct CaService {
    /// The validated config.
    pub config: CaConfig,
    /// The signer and the roots it publishes; replaced when the CA directory changes.
    pub authority: RwLock<Arc<Authority>>,
    /// Tokens, certificate records, revocations.
    pub state: Store,
    /// What a reload can change: admins, limits, lifetimes, attestors.
    pub settings: settings::SettingsCell,
    /// `/v1/bundle` document cache.
    pub bundle: BundleCache,
    /// The bundles of the trust domains this CA federates with.
    pub foreign: foreign::Foreign,
    /// Per-IP enrollment limiter.
    pub limiter: RateLimiter,
    /// Per-ID renewal limiter (`limits.renew_per_id_per_minute`).
    pub renew_limiter: RateLimiter<String>,
    /// Per-ID JWT-SVID limiter (`limits.jwt_per_id_per_sec`).
    pub jwt_limiter: RateLimiter<String>,
    /// Renewals made by young certificates.
    pub young_renewals: ratelimit::YoungRenewals,
    /// Metrics.
    pub metrics: CaMetrics,
    /// The CA's own serving identity.
    pub store: CertStore,
    /// With the CA in the database: whether this replica is behind the stored version.
    pub behind: replica::Behind,
}

impl CaService {
    /// The current signer and roots.
    pub fn authority(&self) -> Arc<Authority> {
        match self.authority.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// How long requests in flight get to finish when the CA shuts down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A started CA.
#[derive(Debug)]
pub struct RunningCa {
    /// Bound address.
    pub addr: SocketAddr,
    /// The OIDC discovery listener's address, when configured.
    pub oidc_addr: Option<SocketAddr>,
    /// The federation bundle endpoint's address, when configured.
    pub bundle_endpoint_addr: Option<SocketAddr>,
    /// The ops listener's address (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub ops_addr: Option<SocketAddr>,
    /// Shared service state (tests read metrics from it).
    pub service: Arc<CaService>,
    lifecycle: Lifecycle,
    accept: tokio::task::JoinHandle<()>,
    /// Background loops (own renewal, directory watch) that end with the process.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// With CA material in the database: the CA and this replica's name in its heartbeats.
    replica: Option<(DbCa, String)>,
}

impl RunningCa {
    /// Reads the config file at `path` again and applies what can change while running
    /// (a `SIGHUP`); see [`settings::reload`]. On an error nothing changed.
    pub async fn reload(&self, path: &Path) -> Result<settings::Reloaded, settings::ReloadError> {
        let result = settings::reload(&self.service, path).await;
        let label = if result.is_ok() { "success" } else { "failure" };
        self.service
            .metrics
            .reloads
            .get_or_create(&metrics::ResultLabel { result: label })
            .inc();
        result
    }

    /// Drains: stops accepting, lets requests in flight finish (up to [`SHUTDOWN_GRACE`]),
    /// closes what is left, then stops the background loops.
    pub async fn shutdown(self) {
        self.lifecycle.shutdown(SHUTDOWN_GRACE).await;
        let _ = self.accept.await;
        for t in self.background {
            t.abort();
        }
        if let Some((ca, name)) = self.replica {
            // A replica that left is not waited for by `rotate activate`.
            if let Err(e) = ca.leave(&name).await {
                tracing::warn!(error = %e, "could not remove this replica's heartbeat");
            }
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// CA material.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// State database.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Where the CA's keys are kept (the database, the key-encryption key).
    #[error(transparent)]
    Keys(#[from] crate::keys::KeysError),
    /// The Kubernetes attestor's keys cannot be loaded.
    #[error("attestors.kubernetes: {0}")]
    Jwks(#[from] jwks_fetch::JwksError),
    /// The CA's own serving certificate did not validate.
    #[error("own certificate: {0}")]
    OwnIdentity(#[from] ward_tls::StoreError),
    /// The trust bundle or TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] ward_tls::TlsError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Starts the CA and serves until `shutdown` resolves, then drains.
pub async fn run(
    config: CaConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let ca = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: no longer accepting; draining requests in flight");
    ca.shutdown().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Where this replica's CA material comes from, and what follows it.
enum Source {
    Dir(std::path::PathBuf),
    Db { ca: DbCa, version: i64 },
}

/// Opens the state and loads the CA material the config names: the CA directory (checked
/// before the state is opened), or the generations in the PostgreSQL state.
async fn open(config: &CaConfig) -> Result<(Authority, Store, Source), ServeError> {
    let td = &config.trust_domain;
    match &config.keys {
        CaKeys::Dir(dir) => {
            let authority = Authority::load(dir, td)?;
            let state = Store::open(&config.state).await?;
            Ok((authority, state, Source::Dir(dir.clone())))
        }
        CaKeys::Database { kek_file } => {
            let kek = Kek::load(kek_file).map_err(crate::keys::KeysError::from)?;
            let state = Store::open(&config.state).await?;
            let ca = DbCa::on(&state, kek, td.clone())?;
            let (material, version) = ca.load().await?.ok_or_else(|| CaError::BadCa {
                path: DbCa::origin(),
                problem: "the database holds no CA yet; create one with `ward-ca init --config` (or move a CA directory in with `ward-ca state copy --ca-dir`)".into(),
            })?;
            let authority = Authority::from_material(&material, td, &DbCa::origin())?;
            Ok((authority, state, Source::Db { ca, version }))
        }
    }
}

/// Loads everything, binds, and starts serving.
pub async fn start(config: CaConfig) -> Result<RunningCa, ServeError> {
    let (authority, state, source) = open(&config).await?;
    let kube = match &config.kubernetes {
        Some(k) => Some(KubernetesAttestor::new(k.clone(), config.trust_domain.clone()).await?),
        None => None,
    };
    let bundles = authority
        .trust_bundles(&config.trust_domain)
        .map_err(ward_tls::TlsError::from)?;
    let store = CertStore::new(config.trust_domain.clone(), BundleStore::new(bundles));
    let metrics = CaMetrics::default();
    metrics
        .issuer_expiry
        .set(authority.issuer.not_after().unix_timestamp());
    let service = Arc::new(CaService {
        authority: RwLock::new(Arc::new(authority)),
        bundle: BundleCache::default(),
        foreign: foreign::Foreign::default(),
        limiter: RateLimiter::new(config.limits.enroll_per_ip_per_sec),
        renew_limiter: RateLimiter::per(
            config.limits.renew_per_id_per_minute,
            Duration::from_secs(60),
        ),
        jwt_limiter: RateLimiter::new(config.limits.jwt_per_id_per_sec),
        young_renewals: ratelimit::YoungRenewals::default(),
        settings: settings::SettingsCell::new(settings::Settings::of(&config, kube)),
        config,
        state,
        metrics,
        store,
        behind: replica::Behind::default(),
    });
    own_identity::issue(&service).await?;
    federation::load(&service).await?;

    let tls = ward_tls::server_config_optional_client_auth(&service.store, &[b"h2", b"http/1.1"])?;
    let bind = |source| ServeError::Bind {
        addr: service.config.listen,
        source,
    };
    let listener = TcpListener::bind(service.config.listen)
        .await
        .map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    // The other listeners are bound before anything starts, so a taken port fails start-up
    // cleanly.
    let (oidc_listener, oidc_addr) =
        bind_optional(service.config.oidc.as_ref().map(|o| o.listen)).await?;
    let oidc_tls = match &service.config.oidc {
        Some(oidc) => oidc::tls(oidc)?,
        None => None,
    };
    if let (Some(oidc), Some(a)) = (&service.config.oidc, oidc_addr) {
        tracing::info!(addr = %a, issuer = %oidc.issuer, https = oidc_tls.is_some(), "OIDC discovery serving");
    }
    let (ops_listener, ops_addr) = bind_optional(service.config.ops).await?;
    if let Some(a) = ops_addr {
        tracing::info!(addr = %a, "ops listener serving /healthz /readyz /metrics");
    }
    let (mut endpoint, mut bundle_endpoint_addr) = (None, None);
    if let Some(e) = &service.config.federation.bundle_endpoint {
        let bind = |source| ServeError::Bind {
            addr: e.listen,
            source,
        };
        let tls = bundle_endpoint::tls(e, &service)?;
        let l = TcpListener::bind(e.listen).await.map_err(bind)?;
        bundle_endpoint_addr = Some(l.local_addr().map_err(bind)?);
        endpoint = Some((l, TlsAcceptor::from(Arc::new(tls)), e.path.clone()));
        tracing::info!(addr = %bundle_endpoint_addr.map_or_else(String::new, |a| a.to_string()), path = %e.path, web = e.web_cert.is_some(), "SPIFFE bundle endpoint serving");
    }
    let lifecycle = Lifecycle::default();
    let accept = tokio::spawn(listener::accept_loop(
        listener,
        TlsAcceptor::from(Arc::new(tls)),
        service.clone(),
        lifecycle.clone(),
    ));
    let mut replica = None;
    let follow = match source {
        Source::Dir(dir) => tokio::spawn(follow::watch(service.clone(), dir)),
        Source::Db { ca, version } => {
            let name = crate::keys::db::replica_name();
            replica = Some((ca.clone(), name.clone()));
            tokio::spawn(replica::follow_db(service.clone(), ca, version, name))
        }
    };
    let mut background = vec![
        tokio::spawn(own_identity::renew_at_half_life(service.clone())),
        follow,
        tokio::spawn(upkeep::prune_records(service.clone())),
    ];
    if let Some(listener) = oidc_listener {
        background.push(tokio::spawn(oidc::serve(
            listener,
            oidc_tls,
            service.clone(),
        )));
    }
    if let Some(listener) = ops_listener {
        background.push(tokio::spawn(ops::serve(
            listener,
            service.clone(),
            lifecycle.clone(),
        )));
    }
    for f in &service.config.federation.federates_with {
        background.push(tokio::spawn(federation::follow(service.clone(), f.clone())));
    }
    if let Some((listener, acceptor, path)) = endpoint {
        background.push(tokio::spawn(bundle_endpoint::serve(
            listener,
            acceptor,
            service.clone(),
            path,
        )));
    }
    tracing::info!(%addr, trust_domain = %service.config.trust_domain, "ward-ca serving");
    Ok(RunningCa {
        addr,
        oidc_addr,
        bundle_endpoint_addr,
        ops_addr,
        service,
        lifecycle,
        accept,
        background,
        replica,
    })
}

/// Binds `addr` when given: the listener and the address it got (port 0 picks one).
async fn bind_optional(
    addr: Option<SocketAddr>,
) -> Result<(Option<TcpListener>, Option<SocketAddr>), ServeError> {
    let Some(addr) = addr else {
        return Ok((None, None));
    };
    let bind = |source| ServeError::Bind { addr, source };
    let l = TcpListener::bind(addr).await.map_err(bind)?;
    let bound = l.local_addr().map_err(bind)?;
    Ok((Some(l), Some(bound)))
}

/// Counts a refused handshake and records it in the audit log.
fn handshake_refused(
    service: &CaService,
    peer: SocketAddr,
    (reason, detail): (&'static str, String),
) {
    service
        .metrics
        .handshake_failures
        .get_or_create(&metrics::ReasonLabel { reason })
        .inc();
    tracing::info!(target: "ward::audit", event = "handshake_refused", reason, client = %peer, %detail, "TLS handshake refused");
}
