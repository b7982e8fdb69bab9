//! Inbound listeners: terminate mTLS, authorize the peer by policy, relay to the app.
//!
//! The policy decision is made inside the TLS handshake (through ward-tls's
//! `ClientAuthorizer`), so a denied peer receives an `access_denied` alert and no byte of its
//! reaches the app, which never even sees a connection. The verdict is handed from the
//! verifier to this connection's task through a task-local slot, because rustls runs the
//! verifier synchronously inside the task's poll of the handshake. A resumed session asks the
//! same authorizer from ward-tls's session store, in the same poll, and fills the same slot;
//! a session the policy no longer admits is not resumed. Once relaying, the
//! connection re-checks its peer whenever the policy changes (and whenever the bundle's
//! revocation list changes) and closes if it is no longer allowed.

use std::borrow::Cow;
use std::future::pending;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use ward_identity::{SpiffeId, SvidLeaf};
use ward_policy::Verdict;
use ward_tls::ClientAuthorizer;

use crate::config::InboundConfig;
use crate::conn::ConnRecord;
use crate::http::inbound::{xfcc, AppClient, Ctx};
use crate::http::RequestMetrics;
use crate::pipe::{relay, CloseCode, CloseReason};
use crate::policy_store::PolicyStore;
use crate::{accept_loop, Shared};
use hyper::header::HeaderValue;
use hyper::http::uri::Authority;
use ward_daemon::{PerWorker, Phase};

tokio::task_local! {
    static HANDSHAKE: Arc<HandshakeSlot>;
}

/// Where the verifier leaves its verdict for the connection task.
#[derive(Debug, Default)]
struct HandshakeSlot(Mutex<Option<(SvidLeaf, Verdict)>>);

impl HandshakeSlot {
    fn take(&self) -> Option<(SvidLeaf, Verdict)> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

/// The policy, asked during the handshake for one listener.
#[derive(Debug)]
pub struct PolicyAuthorizer {
    listener: String,
    policy: PolicyStore,
}

impl PolicyAuthorizer {
    /// An authorizer for `listener`.
    pub fn new(listener: &str, policy: PolicyStore) -> Self {
        Self {
            listener: listener.to_owned(),
            policy,
        }
    }
}

impl ClientAuthorizer for PolicyAuthorizer {
    fn authorize(&self, peer: &SvidLeaf) -> bool {
        let verdict = self
            .policy
            .current()
            .policy
            .evaluate(&peer.id, &self.listener);
        let permits = verdict.permits();
        let _ = HANDSHAKE.try_with(|slot| {
            if let Ok(mut g) = slot.0.lock() {
                *g = Some((peer.clone(), verdict));
            }
        });
        permits
    }
}

/// One inbound listener's fixed parts.
pub struct InboundListener {
    /// Its configuration.
    pub config: InboundConfig,
    /// TLS acceptor with the policy-aware verifier.
    pub acceptor: TlsAcceptor,
    /// `protocol: http`: the pools of connections to the app, one per connection worker.
    pub app: Option<PerWorker<AppClient>>,
    /// `forward` as a URI authority, for HTTP requests to the app (`None` if it is not one).
    pub app_authority: Option<Authority>,
}

impl std::fmt::Debug for InboundListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundListener")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Accepts until the proxy drains.
pub async fn serve(listener: TcpListener, inbound: Arc<InboundListener>, shared: Arc<Shared>) {
    let name = inbound.config.name.clone();
    accept_loop(
        listener,
        &name,
        "inbound",
        shared,
        move |sock, shared, mut record| {
            let inbound = inbound.clone();
            async move {
                // A redirected connection goes to the port the caller dialled, on loopback,
                // which the interception rules leave alone.
                // (IPv6 callers too: every pod has 127.0.0.1, and apps listen on it or on all
                // addresses far more often than on ::1.)
                let forward: Cow<'_, str> = if inbound.config.transparent {
                    match crate::transparent::original_destination(&sock) {
                        Ok(dst) => Cow::Owned(format!("127.0.0.1:{}", dst.port())),
                        Err(e) => {
                            return record.closed(CloseCode::NoOriginalDestination, e.to_string())
                        }
                    }
                } else {
                    Cow::Borrowed(&inbound.config.forward)
                };
                handle(sock, &inbound, &shared, record, &forward).await
            }
        },
    )
    .await;
}

async fn handle(
    sock: TcpStream,
    inbound: &InboundListener,
    shared: &Arc<Shared>,
    mut rec: ConnRecord,
    forward: &str,
) {
    let limits = shared.limits;
    // For the app: who connected, and where (PROXY protocol, x-forwarded-for).
    let (client, local) = (sock.peer_addr(), sock.local_addr());
    let slot = Arc::new(HandshakeSlot::default());
    let accept = inbound.acceptor.accept(sock).into_fallible();
    let result = HANDSHAKE
        .scope(
            slot.clone(),
            ward_tls::session::scope(timeout(limits.handshake_timeout, accept)),
        )
        .await;
    let peer_leaf = slot.take().map(|(leaf, verdict)| {
        log_verdict(&inbound.config.name, &leaf.id, &verdict);
        rec.decided(leaf.id.clone(), verdict);
        leaf
    });
    let mut tls = match result {
        Err(_) => return rec.handshake_failed("handshake_timeout", String::new()),
        Ok(Err((e, sock))) => {
            let (reason, mut detail) = ward_tls::handshake_failure(&e);
            if reason == ward_tls::verify::NO_SHARED_GROUP {
                let groups = &inbound.config.key_exchange;
                detail = format!("{detail}; this listener accepts key_exchange: {groups}");
                tracing::warn!(listener = %inbound.config.name, client = %client.as_ref().map_or_else(|e| e.to_string(), |a| a.to_string()), %detail, "refused: no key-exchange group in common");
            }
            rec.handshake_failed(reason, detail);
            return linger_close(sock).await;
        }
        Ok(Ok(tls)) => tls,
    };
    rec.handshake_done(tls.get_ref().1);
    let resumed = rec.resumed;
    // A full handshake ran the verifier and the authorizer; a resumed one ran ward-tls's
    // session checks and the authorizer. Either way the slot holds the peer and the verdict,
    // so a connection without a recorded peer is refused rather than relayed.
    let (Some(peer), Some(leaf)) = (rec.peer.clone(), peer_leaf) else {
        return rec.closed(CloseCode::NoPeerIdentity, "");
    };
    let stop = async {
        tokio::select! {
            reason = revoked(shared.policy.clone(), &peer, &inbound.config.name) => reason,
            reason = crate::pipe::peer_revoked(&shared.bundles, &leaf) => reason,
            () = shared.lifecycle.reached(Phase::Closing) => CloseReason::Shutdown,
        }
    };

    if let Some(app) = &inbound.app {
        let peer_der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let own = shared.store.current().map(|id| id.id().clone());
        let Some(xfcc) = own.and_then(|own| xfcc(&own, &peer, &peer_der)) else {
            return rec.closed(CloseCode::NoOwnIdentity, "");
        };
        let name = &inbound.config.name;
        let ctx = Arc::new(Ctx {
            listener: name.clone(),
            forward: forward.to_owned(),
            authority: if inbound.config.transparent {
                forward.parse().ok()
            } else {
                inbound.app_authority.clone()
            },
            peer: peer.clone(),
            xfcc,
            underscores: inbound.config.headers_with_underscores,
            client: client
                .ok()
                .and_then(|c| HeaderValue::from_str(&c.ip().to_string()).ok()),
            forwarded_for: inbound.config.x_forwarded_for,
            shared: shared.clone(),
            app: app.get().clone(),
            requests: RequestMetrics::new(&shared.metrics, name, "inbound"),
        });
        // Boxed: inline, HTTP mode's connection state would make every inbound task (TCP
        // ones too) as large as itself, since a future is as big as its largest state.
        let reason = Box::pin(crate::http::inbound::serve(tls, ctx, stop)).await;
        return finish(rec, reason, shared, &inbound.config.name, &peer);
    }

    let app = match timeout(limits.connect_timeout, TcpStream::connect(forward)).await {
        Ok(Ok(app)) => app,
        Ok(Err(e)) => {
            let _ = timeout(limits.connect_timeout, tls.shutdown()).await;
            return rec.closed(CloseCode::AppUnavailable, format!("{forward}: {e}"));
        }
        Err(_) => {
            let _ = timeout(limits.connect_timeout, tls.shutdown()).await;
            return rec.closed(
                CloseCode::AppUnavailable,
                format!("{forward}: connect timed out"),
            );
        }
    };
    let _ = app.set_nodelay(true);
    let mut app = app;
    if inbound.config.proxy_protocol.is_some() {
        let (Ok(client), Ok(local)) = (client, local) else {
            return rec.closed(CloseCode::AppUnavailable, "no address for the PROXY header");
        };
        let header = crate::proxy_protocol::v2_header(client, local, &peer, resumed);
        match timeout(limits.connect_timeout, app.write_all(&header)).await {
            Ok(Ok(())) => {}
            _ => {
                let _ = timeout(limits.connect_timeout, tls.shutdown()).await;
                return rec.closed(
                    CloseCode::AppUnavailable,
                    format!("{forward}: PROXY header not written"),
                );
            }
        }
    }

    let reason = relay(tls, app, limits.idle_timeout, &rec.traffic, stop).await;
    finish(rec, reason, shared, &inbound.config.name, &peer);
}

/// Records why a connection ended (re-deciding the peer if the policy closed it).
fn finish(
    mut rec: ConnRecord,
    reason: CloseReason,
    shared: &Shared,
    listener: &str,
    peer: &SpiffeId,
) {
    if let CloseReason::PolicyRevoked { rule } = &reason {
        tracing::info!(listener, peer = %peer, rule = %rule, "closing connection: policy no longer allows peer");
        let verdict = shared.policy.current().policy.evaluate(peer, listener);
        rec.decided(peer.clone(), verdict);
    }
    let detail = match &reason {
        CloseReason::Error(e) => e.clone(),
        CloseReason::PolicyRevoked { rule } => format!("rule {rule}"),
        _ => String::new(),
    };
    rec.closed(reason.code(), detail);
}

fn log_verdict(listener: &str, peer: &SpiffeId, verdict: &Verdict) {
    if !verdict.permits() {
        tracing::info!(listener, peer = %peer, %verdict, "connection denied by policy");
    } else if verdict.outcome() == ward_policy::Outcome::AuditDeny {
        tracing::warn!(listener, peer = %peer, %verdict, "audit mode: policy would deny this connection");
    }
}

/// After a refused handshake: send FIN after the alert and drain what the peer already sent
/// (bounded in bytes and time), so the peer reads the alert instead of a reset.
async fn linger_close(mut sock: TcpStream) {
    let _ = sock.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Resolves when the policy in force no longer permits `peer` on `listener`: the one in force
/// when first polled (a reload may have landed between the handshake's decision and the
/// relay, while the app was slow to accept), then every later one.
async fn revoked(policy: PolicyStore, peer: &SpiffeId, listener: &str) -> CloseReason {
    let mut rx = policy.subscribe();
    loop {
        let verdict = rx.borrow_and_update().policy.evaluate(peer, listener);
        if !verdict.permits() {
            return CloseReason::PolicyRevoked {
                rule: verdict.rule().to_owned(),
            };
        }
        if rx.changed().await.is_err() {
            return pending().await;
        }
    }
}
