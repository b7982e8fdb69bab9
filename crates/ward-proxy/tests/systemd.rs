//! `ward-proxy run` under systemd's `Type=notify` protocol, with the real binary and a notify
//! socket this test binds in place of systemd's: `READY=1` once it serves (its /ready answers),
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`, `RELOADING=1` + `MONOTONIC_USEC` then `READY=1`
//! around a SIGHUP, `STOPPING=1` on SIGTERM, and exit 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use ward_e2e::kit::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_ward-proxy");

fn wait_for(sock: &UnixDatagram, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no {what} from ward-proxy");
        let n = sock.recv(&mut buf).expect("a notification from ward-proxy");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.contains(what) {
            return msg;
        }
    }
}

/// The sidecar, killed if the test fails before it stops it.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tells_systemd_ready_reloading_stopping_and_keeps_the_watchdog_fed() {
    let pki = Pki::new();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let admin = free_port();
    pki.file("policy.yaml", ALLOW_FRONTEND);
    let config = pki.file(
        "proxy.yaml",
        &format!(
            "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
             policy: policy.yaml\ninbound:\n  - {{ name: api, listen: \"127.0.0.1:{}\", forward: \"127.0.0.1:{}\" }}\n\
             admin: \"127.0.0.1:{admin}\"\n",
            cert.display(),
            key.display(),
            pki.bundle().display(),
            free_port(),
            free_port()
        ),
    );
    let socket = pki.path("notify.sock");
    let notify = UnixDatagram::bind(&socket).unwrap();
    let mut daemon = Daemon(
        Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "200000")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id().to_string();
    wait_for(&notify, "READY=1");
    assert_eq!(
        ward_e2e::processes::http_get(admin, "/ready").map(|r| r.0),
        Some(200),
        "READY=1 comes once it serves"
    );
    for _ in 0..3 {
        wait_for(&notify, "WATCHDOG=1");
    }
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let reloading = wait_for(&notify, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    wait_for(&notify, "READY=1");
    assert!(daemon.0.try_wait().unwrap().is_none());
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    wait_for(&notify, "STOPPING=1");
    assert!(daemon.0.wait().unwrap().success());
}
