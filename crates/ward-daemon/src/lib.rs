//! ward-daemon: how ward's daemons (the sidecar and the CA) accept connections and stop.
//!
//! The mini-redis pattern, written once: [`Lifecycle`] is the shutdown signal (a phase
//! broadcast: running, draining, closing) plus a count of live connections to wait on;
//! [`accept_loop`] accepts until draining, admits each connection through a [`Gate`] (a global
//! cap, and optionally a per-client-IP cap) or closes it at once, and hands the admitted ones
//! to the daemon with an [`Admission`] that gives every slot back when the connection ends.
//! Shutdown is `Lifecycle::shutdown(grace)`: stop accepting, let open connections finish up
//! to the grace period, then tell the rest to close and wait briefly for them. [`notify`]
//! speaks systemd's readiness and watchdog protocol for both daemons, and [`Signals`] is the
//! signal loop they run while serving (SIGHUP reloads, SIGTERM/SIGINT drain). [`Workers`]
//! are the sidecar's connection threads (one single-threaded runtime each, connections dealt
//! to them in turn, see [`accept`]) and [`PerWorker`] a pool kept once per worker.

#![forbid(unsafe_code)]

mod gate;
mod lifecycle;
pub mod notify;
mod signals;
mod workers;

pub use gate::{Admission, Gate, Refusal};
pub use lifecycle::{ConnGuard, Lifecycle, Phase};
pub use signals::Signals;
pub use workers::{PerWorker, Workers};

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// [`accept`], each admitted connection served on a task of its own (on this runtime).
pub async fn accept_loop<S, F>(
    listener: TcpListener,
    name: &str,
    lifecycle: &Lifecycle,
    gate: &Gate,
    refused: impl FnMut(Refusal, SocketAddr),
    mut serve: S,
) where
    S: FnMut(TcpStream, SocketAddr, Admission) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    accept(
        listener,
        name,
        lifecycle,
        gate,
        refused,
        |sock, peer, admission| {
            tokio::spawn(serve(sock, peer, admission));
        },
    )
    .await;
}

/// Accepts on `listener` until `lifecycle` starts draining. Each connection is admitted by
/// `gate` (and counted by `lifecycle`) and given to `admitted` (which starts serving it, on
/// this runtime or on a [`Workers`] thread), or refused at once (closed before any TLS work)
/// and reported to `refused`. `name` labels log lines.
pub async fn accept(
    listener: TcpListener,
    name: &str,
    lifecycle: &Lifecycle,
    gate: &Gate,
    mut refused: impl FnMut(Refusal, SocketAddr),
    mut admitted: impl FnMut(TcpStream, SocketAddr, Admission),
) {
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = lifecycle.reached(Phase::Draining) => return,
        };
        match gate.admit(peer, lifecycle) {
            Ok(admission) => {
                let _ = sock.set_nodelay(true);
                admitted(sock, peer, admission);
            }
            Err(refusal) => {
                drop(sock);
                refused(refusal, peer);
            }
        }
    }
}

#[cfg(test)]
mod tests;
