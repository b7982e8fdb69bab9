//! Running, draining, closing: the shutdown sequence, and counting connections to wait on.
//!
//! On shutdown a daemon moves to `Draining` (listeners stop accepting, readiness turns 503,
//! open connections continue), waits up to its grace period for connections to finish, then
//! moves to `Closing`, which every remaining connection obeys by closing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// The daemon's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; open connections may finish.
    Draining,
    /// Open connections must close now.
    Closing,
}

/// Shared shutdown state; clones share it.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    phase: Arc<watch::Sender<Phase>>,
    active: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: Arc::new(watch::Sender::new(Phase::Running)),
            active: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
        }
    }
}

/// Held by each connection task; dropping it tells the lifecycle the connection is gone.
#[derive(Debug)]
pub struct ConnGuard {
    lifecycle: Lifecycle,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.lifecycle.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.lifecycle.idle.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Registers a live connection.
    pub fn track(&self) -> ConnGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ConnGuard {
            lifecycle: self.clone(),
        }
    }

    /// Open connections now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.phase.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|p| *p >= phase).await;
    }

    /// Drains: stop accepting, wait up to `grace` for connections, then close the rest and
    /// wait (briefly) for their tasks to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.phase.send_replace(Phase::Draining);
        let drained = tokio::time::timeout(grace, self.wait_idle()).await.is_ok();
        if !drained {
            tracing::info!(
                open = self.active(),
                "shutdown grace elapsed; closing open connections"
            );
        }
        self.phase.send_replace(Phase::Closing);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.wait_idle()).await;
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}
