//! Outbound listeners: plaintext from the local app, mTLS to the upstream sidecar.
//!
//! Nothing is read from the app until the upstream has proved, in the handshake, that it holds
//! an SVID matching `server_id`; if it does not, the app's connection is closed and whatever
//! the app wrote is never sent anywhere.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::config::{OutboundConfig, Protocol};
use crate::conn::ConnRecord;
use crate::http::outbound::{serve as serve_http, UpstreamConnector, UpstreamPool};
use crate::limits::Limits;
use crate::metrics::ConnLabels;
use crate::pipe::{relay, CloseCode, CloseReason};
use crate::transparent::{original_destination, Route};
use crate::{accept_loop, Shared};
use ward_daemon::Phase;

/// One outbound listener's fixed parts.
pub struct OutboundListener {
    /// Its configuration.
    pub config: OutboundConfig,
    /// TLS connector expecting `server_id`.
    pub connector: TlsConnector,
    /// SNI to send: the upstream's host name (ignored for verification).
    pub server_name: ServerName<'static>,
    /// `protocol: http`: the pool of mTLS connections requests are sent on.
    pub pool: Option<Arc<UpstreamPool>>,
    /// `transparent`: a connector per expected ID, in [`TransparentOutbound::patterns`] order.
    pub routes: Vec<TlsConnector>,
}

impl OutboundListener {
    /// Builds the listener's connector parts.
    pub fn new(
        config: OutboundConfig,
        connector: TlsConnector,
        limits: Limits,
        metrics: Arc<crate::Metrics>,
        workers: usize,
    ) -> Self {
        let host = config
            .upstream
            .rsplit_once(':')
            .map_or("", |(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .to_owned();
        // Any name that is neither a DNS name nor an IP sends no SNI (the IP form never does).
        let server_name = ServerName::try_from(host).unwrap_or(ServerName::IpAddress(
            std::net::IpAddr::from([0, 0, 0, 0]).into(),
        ));
        let pool = (config.protocol == Protocol::Http).then(|| {
            let connector = UpstreamConnector {
                listener: config.name.as_str().into(),
                upstream: config.upstream.as_str().into(),
                tls: connector.clone(),
                server_name: server_name.clone(),
                limits,
                metrics,
            };
            Arc::new(UpstreamPool::new(connector, workers))
        });
        Self {
            config,
            connector,
            server_name,
            pool,
            routes: Vec::new(),
        }
    }
}

impl std::fmt::Debug for OutboundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundListener")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Accepts until the proxy drains.
pub async fn serve(listener: TcpListener, outbound: Arc<OutboundListener>, shared: Arc<Shared>) {
    let name = outbound.config.name.clone();
    accept_loop(
        listener,
        &name,
        "outbound",
        shared,
        move |sock, shared, record| {
            let outbound = outbound.clone();
            // The session scope spans the relay too: the upstream's ticket arrives after the
            // handshake, with the first bytes read.
            async move { ward_tls::session::scope(handle(sock, &outbound, &shared, record)).await }
        },
    )
    .await;
}

async fn handle(
    app: TcpStream,
    outbound: &OutboundListener,
    shared: &Arc<Shared>,
    mut rec: ConnRecord,
) {
    if let Some(pool) = &outbound.pool {
        let name: Arc<str> = Arc::from(outbound.config.name.as_str());
        return match serve_http(app, name, pool.clone(), shared.clone()).await {
            Ok(()) => rec.closed(CloseCode::Done, ""),
            Err(e) => rec.closed(CloseCode::IoError, e.to_string()),
        };
    }
    let limits = shared.limits;
    // A redirected connection goes where the app sent it, proving the ID that address maps
    // to; any other goes to the configured upstream.
    let (upstream, connector, server_name): (Cow<'_, str>, _, _) =
        match &outbound.config.transparent {
            None => (
                Cow::Borrowed(&outbound.config.upstream),
                &outbound.connector,
                outbound.server_name.clone(),
            ),
            Some(transparent) => {
                let dst = match original_destination(&app) {
                    Ok(dst) => dst,
                    Err(e) => return rec.closed(CloseCode::NoOriginalDestination, e.to_string()),
                };
                let index = match transparent.route(dst) {
                    Route::Passthrough => {
                        return passthrough(app, dst, &outbound.config.name, shared, rec).await
                    }
                    Route::Mapped(i) => i,
                    Route::Default => outbound.routes.len().saturating_sub(1),
                };
                let Some(connector) = outbound.routes.get(index) else {
                    return rec.closed(CloseCode::NoOriginalDestination, "no route");
                };
                let name = ServerName::IpAddress(dst.ip().into());
                (Cow::Owned(dst.to_string()), connector, name)
            }
        };
    let Some(tcp) = connect(&upstream, &limits, &mut rec).await else {
        return;
    };
    let connect = connector.connect(server_name, tcp);
    let tls = match timeout(limits.handshake_timeout, connect).await {
        Err(_) => return rec.handshake_failed("handshake_timeout", upstream.into_owned()),
        Ok(Err(e)) => {
            let (reason, detail) = ward_tls::handshake_failure(&e);
            tracing::warn!(listener = %outbound.config.name, upstream = %upstream, reason, %detail, "upstream refused");
            return rec.handshake_failed(reason, detail);
        }
        Ok(Ok(tls)) => tls,
    };
    rec.handshake_done(tls.get_ref().1);
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| ward_identity::SvidProfile::check(der).ok());
    rec.peer = leaf.as_ref().map(|l| l.id.clone());
    let stop = async {
        match &leaf {
            Some(leaf) => tokio::select! {
                () = shared.lifecycle.reached(Phase::Closing) => CloseReason::Shutdown,
                reason = crate::pipe::peer_revoked(&shared.bundles, leaf) => reason,
            },
            None => {
                shared.lifecycle.reached(Phase::Closing).await;
                CloseReason::Shutdown
            }
        }
    };
    let reason = relay(tls, app, limits.idle_timeout, &rec.traffic, stop).await;
    let detail = match &reason {
        CloseReason::Error(e) => e.clone(),
        _ => String::new(),
    };
    rec.closed(reason.code(), detail);
}

/// TCP to `addr` within the connect timeout, with Nagle off; `None` when it cannot be
/// reached, the record closed saying which address and why.
async fn connect(addr: &str, limits: &Limits, rec: &mut ConnRecord) -> Option<TcpStream> {
    let detail = match timeout(limits.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            return Some(tcp);
        }
        Ok(Err(e)) => format!("{addr}: {e}"),
        Err(_) => format!("{addr}: connect timed out"),
    };
    rec.closed(CloseCode::UpstreamUnavailable, detail);
    None
}

/// A `passthrough` destination: plaintext, as the app sent it, counted.
async fn passthrough(
    app: TcpStream,
    dst: SocketAddr,
    listener: &str,
    shared: &Arc<Shared>,
    mut rec: ConnRecord,
) {
    shared
        .metrics
        .passthrough
        .get_or_create(&ConnLabels {
            listener: listener.to_owned(),
            direction: "outbound",
        })
        .inc();
    let limits = shared.limits;
    let Some(upstream) = connect(&dst.to_string(), &limits, &mut rec).await else {
        return;
    };
    let stop = async {
        shared.lifecycle.reached(Phase::Closing).await;
        CloseReason::Shutdown
    };
    let reason = relay(upstream, app, limits.idle_timeout, &rec.traffic, stop).await;
    let detail = match &reason {
        CloseReason::Error(e) => e.clone(),
        _ => String::new(),
    };
    rec.closed(reason.code(), detail);
}
