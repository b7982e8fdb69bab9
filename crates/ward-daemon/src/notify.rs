//! systemd's readiness protocol for `Type=notify` units: `READY=1` once the daemon serves,
//! `RELOADING=1` (with the monotonic timestamp systemd 253+ asks for) around a `SIGHUP`
//! reload, `STOPPING=1` when it starts draining, and `WATCHDOG=1` keep-alives at half the
//! unit's `WatchdogSec` from a task on the daemon's own runtime, so a wedged runtime stops
//! them and systemd restarts the process. Everything is a no-op outside systemd (no
//! `NOTIFY_SOCKET`), and a failed send is logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(what: &'static str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not tell systemd {what}");
    }
}

/// The daemon serves.
pub fn ready() {
    send(
        "READY=1",
        &[NotifyState::Ready, NotifyState::Status("serving")],
    );
}

/// A reload starts; call [`ready`] when it is over (applied or refused).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(e) => tracing::warn!(error = %e, "no monotonic clock for RELOADING=1"),
    }
}

/// The daemon drains and will exit.
pub fn stopping() {
    send(
        "STOPPING=1",
        &[NotifyState::Stopping, NotifyState::Status("draining")],
    );
}

/// The keep-alive interval when the unit has a watchdog (`WATCHDOG_USEC` for this process).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Starts the keep-alive task when the unit has a watchdog; abort it when done.
pub fn watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let every = watchdog_interval()?;
    tracing::info!(
        every_ms = every.as_millis() as u64,
        "systemd watchdog keep-alives"
    );
    Some(tokio::spawn(async move {
        loop {
            send("WATCHDOG=1", &[NotifyState::Watchdog]);
            tokio::time::sleep(every).await;
        }
    }))
}
