//! `ward-ca serve` under systemd's protocols and `SIGHUP`, with the real binary, curl as the
//! client and a notify socket this test binds in place of systemd's:
//!
//! - `READY=1` once it serves, `WATCHDOG=1` at half of `WATCHDOG_USEC`, `RELOADING=1` with
//!   `MONOTONIC_USEC` then `READY=1` around each reload, `STOPPING=1` on SIGTERM;
//! - SIGHUP applies what can change (attestors, limits) without dropping the listener, names
//!   what needs a restart (a new `listen`) and keeps serving on the old address;
//! - a broken file on SIGHUP changes nothing, is counted as a failed reload, and never stops
//!   the daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ward_e2e::kit::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");

fn config(dir: &Path, api: u16, ops: u16, join_token: bool, max_body: u32) {
    std::fs::write(
        dir.join("ca.yaml"),
        format!(
            "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:{api}\"\nops: \"127.0.0.1:{ops}\"\n\
             state: state.db\ndns_names: [localhost]\nattestors: {{ join_token: {{ enabled: {join_token} }} }}\n\
             limits: {{ max_body_bytes: {max_body}, enroll_per_ip_per_sec: 1000 }}\n"
        ),
    )
    .unwrap();
}

/// POSTs `body` to `/v1/enroll`: status and the error code, if any.
fn enroll(dir: &Path, port: u16, body: &str) -> (u16, String) {
    std::fs::write(dir.join("body.json"), body).unwrap();
    let out = Command::new("curl")
        .current_dir(dir)
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "ca/bundle.pem",
            "-w",
            "\n%{http_code}",
        ])
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@body.json",
        ])
        .arg(format!("https://localhost:{port}/v1/enroll"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status.trim().parse().unwrap(), code)
}

fn token(dir: &Path, name: &str) -> String {
    let (code, out, err) = ward_e2e::kit::run_in(
        Path::new(BIN),
        dir,
        &[
            "token",
            "create",
            "--config",
            "ca.yaml",
            "--id",
            &format!("spiffe://example.org/ns/t/sa/{name}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    csr.pem().unwrap()
}

/// The next datagram on the fake notify socket, within `within`.
fn next(sock: &UnixDatagram, within: Duration) -> String {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification from ward-ca");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Datagrams until one contains `what` (watchdog keep-alives come in between).
fn wait_for(sock: &UnixDatagram, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no {what} from ward-ca");
        let msg = next(sock, Duration::from_secs(20));
        if msg.contains(what) {
            return msg;
        }
    }
}

/// The daemon, killed if the test fails before it stops it.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metrics(ops: u16) -> String {
    ward_e2e::processes::http_get(ops, "/metrics").unwrap().1
}

#[test]
fn sighup_reloads_and_systemd_hears_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (code, _, err) = ward_e2e::kit::run_in(
        Path::new(BIN),
        dir,
        &["init", "--dir", "ca", "--trust-domain", "example.org"],
    );
    assert_eq!(code, 0, "{err}");
    let (api, ops) = (free_port(), free_port());
    config(dir, api, ops, false, 1024);
    let notify = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
    let mut daemon = Daemon(
        Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", "ca.yaml"])
            .env("NOTIFY_SOCKET", dir.join("notify.sock"))
            .env("WATCHDOG_USEC", "300000")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("ca.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id().to_string();

    let ready = wait_for(&notify, "READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready}");
    // Keep-alives at half of the 300 ms watchdog: several within a second.
    let started = Instant::now();
    let mut beats = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if next(&notify, Duration::from_secs(2)).contains("WATCHDOG=1") {
            beats += 1;
        }
    }
    assert!(beats >= 3, "{beats} keep-alives in a second");

    let first = token(dir, "first");
    let body = serde_json::json!({ "token": first, "csr": csr() }).to_string();
    assert_eq!(enroll(dir, api, &body), (403, "attestor_disabled".into()));
    let big = format!("{{\"token\":\"{}\",\"csr\":\"x\"}}", "a".repeat(2000));
    assert_eq!(enroll(dir, api, &big).0, 413);

    // Join tokens on, a bigger body limit, and a new address (which needs a restart).
    let moved = free_port();
    config(dir, moved, ops, true, 65536);
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let reloading = wait_for(&notify, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    wait_for(&notify, "READY=1");
    assert_eq!(
        enroll(dir, api, &body).0,
        200,
        "join tokens are accepted now"
    );
    assert_ne!(enroll(dir, api, &big).0, 413, "the body limit grew");
    let log = std::fs::read_to_string(dir.join("ca.log")).unwrap();
    assert!(
        log.contains("config reloaded")
            && log.contains("attestors.join_token")
            && log.contains("limits"),
        "{log}"
    );
    assert!(
        log.contains("only after a restart") && log.contains("listen"),
        "{log}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", moved)).is_err(),
        "not moved without a restart"
    );

    // A broken file: refused, nothing changes, the daemon keeps running.
    let second = token(dir, "second");
    std::fs::write(
        dir.join("ca.yaml"),
        "trust_domain: example.org\nlisten: [\n",
    )
    .unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    wait_for(&notify, "RELOADING=1");
    wait_for(&notify, "READY=1");
    let second = serde_json::json!({ "token": second, "csr": csr() }).to_string();
    assert_eq!(
        enroll(dir, api, &second).0,
        200,
        "the reloaded settings stay in force"
    );
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "SIGHUP never stops the CA"
    );
    let text = metrics(ops);
    assert!(
        text.contains("ward_ca_reloads_total{result=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("ward_ca_reloads_total{result=\"failure\"} 1"),
        "{text}"
    );
    let log = std::fs::read_to_string(dir.join("ca.log")).unwrap();
    assert!(
        log.contains("reload refused") && log.contains("ca.yaml:"),
        "{log}"
    );

    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    wait_for(&notify, "STOPPING=1");
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
