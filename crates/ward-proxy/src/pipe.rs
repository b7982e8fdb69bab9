//! Relaying bytes both ways between a network peer and a local socket, with half-close,
//! byte counts, an idle timeout and an external stop signal.
//!
//! [`crate::copy::bidirectional`] does the relaying with bounded buffers (1 KiB, growing to
//! 16 KiB for bulk) and propagates half-close: when one side finishes sending, the other
//! side's write half is shut down (a TLS `close_notify`, or a TCP FIN) while the reverse
//! direction carries on.
//! Each side is wrapped in [`Counted`], so bytes and the last activity are known even when the
//! relay is cut short by the idle timer or a stop signal.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Why a relayed connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished normally.
    Done,
    /// No bytes either way for the idle timeout.
    IdleTimeout,
    /// An I/O error on either side.
    Error(String),
    /// A policy change no longer allows the peer.
    PolicyRevoked {
        /// The rule that now denies it.
        rule: String,
    },
    /// The CA revoked the peer's certificate (seen in a bundle refresh).
    PeerRevoked,
    /// The peer's policy refused this side (its TLS `access_denied` alert, which TLS 1.3
    /// delivers after the client's handshake has completed).
    PeerDenied,
    /// The proxy is shutting down and the grace period is over.
    Shutdown,
}

/// Whether `e` is the peer's TLS `access_denied` alert: its policy refused us.
pub fn is_peer_denied(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::AlertReceived(rustls::AlertDescription::AccessDenied)
            )
        })
}

impl CloseReason {
    /// The stable code for metrics and logs.
    pub fn code(&self) -> CloseCode {
        match self {
            Self::Done => CloseCode::Done,
            Self::IdleTimeout => CloseCode::IdleTimeout,
            Self::Error(_) => CloseCode::IoError,
            Self::PolicyRevoked { .. } => CloseCode::PolicyRevoked,
            Self::PeerRevoked => CloseCode::PeerRevoked,
            Self::PeerDenied => CloseCode::PeerDenied,
            Self::Shutdown => CloseCode::Shutdown,
        }
    }
}

/// Why a connection ended, as counted in `ward_connections_closed_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// Both sides finished normally.
    Done,
    /// No bytes either way for the idle timeout.
    IdleTimeout,
    /// An I/O (or HTTP) error on either side.
    IoError,
    /// A policy change no longer allows the peer.
    PolicyRevoked,
    /// The CA revoked the peer's certificate.
    PeerRevoked,
    /// The peer's policy refused this side (`access_denied`).
    PeerDenied,
    /// The proxy is shutting down.
    Shutdown,
    /// The local app could not be reached.
    AppUnavailable,
    /// The upstream could not be reached.
    UpstreamUnavailable,
    /// A completed handshake left no verified peer (refused rather than relayed).
    NoPeerIdentity,
    /// This proxy has no identity of its own to name in XFCC.
    NoOwnIdentity,
    /// A transparent listener's connection had no original destination to go to (it came
    /// straight to the listener, or the kernel kept none).
    NoOriginalDestination,
    /// The TLS handshake failed, with ward-tls's refusal code (`expired`, `eof`, ...).
    Handshake(&'static str),
}

impl CloseCode {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::IdleTimeout => "idle_timeout",
            Self::IoError => "io_error",
            Self::PolicyRevoked => "policy_revoked",
            Self::PeerRevoked => "peer_revoked",
            Self::PeerDenied => "peer_denied",
            Self::Shutdown => "shutdown",
            Self::AppUnavailable => "app_unavailable",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::NoPeerIdentity => "no_peer_identity",
            Self::NoOriginalDestination => "no_original_destination",
            Self::NoOwnIdentity => "no_own_identity",
            Self::Handshake(reason) => reason,
        }
    }
}

/// Bytes moved by a relay.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Bytes read from the network peer (and written to the local side).
    pub from_peer: Arc<AtomicU64>,
    /// Bytes read from the local side (and written to the network peer).
    pub to_peer: Arc<AtomicU64>,
}

impl Traffic {
    /// (from_peer, to_peer) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.from_peer.load(Ordering::Relaxed),
            self.to_peer.load(Ordering::Relaxed),
        )
    }
}

/// A stream that counts the bytes read from it and stamps the time of the last activity.
struct Counted<'a, S> {
    inner: S,
    read: &'a AtomicU64,
    activity: &'a AtomicU64,
    epoch: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
            let now = self.epoch.elapsed().as_millis() as u64;
            self.activity.store(now, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Relays between `peer` (the network side) and `local` until both directions finish, the
/// connection is idle for `idle`, or `stop` resolves with a reason.
pub async fn relay<P, L>(
    peer: P,
    local: L,
    idle: Duration,
    traffic: &Traffic,
    stop: impl Future<Output = CloseReason>,
) -> CloseReason
where
    P: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    let activity = AtomicU64::new(0);
    let mut peer = Counted {
        inner: peer,
        read: &traffic.from_peer,
        activity: &activity,
        epoch,
    };
    let mut local = Counted {
        inner: local,
        read: &traffic.to_peer,
        activity: &activity,
        epoch,
    };
    let copy = crate::copy::bidirectional(&mut peer, &mut local);
    let idle_watch = async {
        loop {
            let last = epoch + Duration::from_millis(activity.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        result = copy => match result {
            Ok(_) => CloseReason::Done,
            Err(e) if is_peer_denied(&e) => CloseReason::PeerDenied,
            Err(e) => CloseReason::Error(e.to_string()),
        },
        () = idle_watch => CloseReason::IdleTimeout,
        reason = stop => reason,
    }
}

/// Resolves when the bundle's revocation list comes to cover `leaf`.
pub async fn peer_revoked(
    bundles: &ward_tls::BundleStore,
    leaf: &ward_identity::SvidLeaf,
) -> CloseReason {
    let mut rx = bundles.subscribe();
    loop {
        if rx.borrow_and_update().revocation_for(leaf).is_some() {
            return CloseReason::PeerRevoked;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
