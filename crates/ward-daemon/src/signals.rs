//! The signal loop both daemons run once they serve: SIGHUP reloads (never stops the
//! daemon), SIGTERM or SIGINT ends the loop so the caller drains; systemd hears each step
//! ([`crate::notify`]). Handlers are installed before the daemon starts, so a signal that
//! arrives while it loads is handled, not fatal.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The installed handlers.
#[derive(Debug)]
pub struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the SIGHUP, SIGTERM and SIGINT handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Tells systemd the daemon serves and feeds its watchdog; runs `reload` on every SIGHUP
    /// (between `RELOADING=1` and `READY=1`); returns on SIGTERM or SIGINT, after
    /// `STOPPING=1`, for the caller to drain.
    pub async fn serve<F, Fut>(mut self, mut reload: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        crate::notify::ready();
        let watchdog = crate::notify::watchdog();
        loop {
            tokio::select! {
                _ = self.hup.recv() => {
                    crate::notify::reloading();
                    reload().await;
                    crate::notify::ready();
                }
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
            }
        }
        crate::notify::stopping();
        if let Some(w) = watchdog {
            w.abort();
        }
    }
}
