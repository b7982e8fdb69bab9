//! ward end to end, with the real binaries as operators run them: `ward-ca serve` with
//! 30-second certificates (20 s in the rotation test), sidecars that enroll with join tokens
//! from `ward-ca token create`, a real app behind them and continuous traffic through the
//! pair, every request a new mTLS handshake between the sidecars.
//!
//! - renewals, a CA killed with SIGKILL and restarted mid-run, a replayed join token after
//!   the restart, and a revocation that closes the revoked workload's open connection and
//!   refuses its new ones: zero failed requests through the legitimate pair;
//! - a full root rotation (prepare, activate, finish) under continuous traffic: zero failed
//!   requests, every sidecar ends on the new issuer and trusts only the new root, and a
//!   certificate from the old generation is refused after finish (and accepted before it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use ward_ca::Issuer;
use ward_e2e::processes::*;
use ward_e2e::{issue_from, raw_client_config};
use ward_tls::pem::load_certs;
use ward_tls::{BundleStore, TrustBundles};

const TD: &str = "example.org";

fn id(name: &str) -> String {
    format!("spiffe://{TD}/ns/test/sa/{name}")
}

/// A CA directory, its config and the running daemon.
struct Ca {
    dir: tempfile::TempDir,
    port: u16,
    proc: Option<Proc>,
}

impl Ca {
    fn start(ttl: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = ward_ca(dir.path(), &["init", "--dir", "ca", "--trust-domain", TD]);
        assert_eq!(code, 0, "{err}");
        let port = free_port();
        std::fs::write(
            dir.path().join("ca.yaml"),
            format!(
                "trust_domain: {TD}\nca_dir: ca\nlisten: \"127.0.0.1:{port}\"\nstate: state.db\n\
                 dns_names: [localhost]\nttl: {{ default: {ttl}, min: 10s, max: {ttl} }}\n\
                 bundle_refresh_hint: 1s\nlimits: {{ enroll_per_ip_per_sec: 1000 }}\n"
            ),
        )
        .unwrap();
        let mut ca = Self {
            dir,
            port,
            proc: None,
        };
        ca.serve();
        ca
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `ward-ca serve` and waits until it accepts connections (it binds last).
    fn serve(&mut self) {
        let args = ["serve", "--config", "ca.yaml"];
        self.proc = Some(Proc::spawn(self.path(), "ca", &bin("ward-ca"), &args));
        wait_until(Duration::from_secs(15), "ward-ca to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill();
        }
    }

    fn ward(&self, args: &[&str]) -> (i32, String) {
        let (code, _, err) = ward_ca(self.path(), args);
        (code, err)
    }

    /// A join token for `name`, written to `<name>.token`.
    fn token(&self, name: &str) {
        let (code, out, err) = ward_ca(
            self.path(),
            &["token", "create", "--config", "ca.yaml", "--id", &id(name)],
        );
        assert_eq!(code, 0, "{err}");
        std::fs::write(self.path().join(format!("{name}.token")), out).unwrap();
    }

    /// Starts a sidecar for `name` with the given listeners (YAML) and allow-list; returns
    /// it and its admin port once it is ready.
    fn sidecar(&self, name: &str, token: &str, listeners: &str, allow: &[&str]) -> (Proc, u16) {
        let admin = free_port();
        let from: Vec<String> = allow.iter().map(|a| format!("\"{}\"", id(a))).collect();
        let policy = if allow.is_empty() {
            "rules: []\n".to_owned()
        } else {
            format!(
                "rules:\n  - name: allowed\n    from: [{}]\n    to: {{ listeners: [api] }}\n",
                from.join(", ")
            )
        };
        std::fs::write(self.path().join(format!("{name}-policy.yaml")), policy).unwrap();
        std::fs::write(
            self.path().join(format!("{name}.yaml")),
            format!(
                "trust_domain: {TD}\nidentity:\n  ca: {{ url: \"https://localhost:{}\", bundle: ca/bundle.pem, token_file: {token}.token }}\n\
                 policy: {name}-policy.yaml\n{listeners}\nadmin: \"127.0.0.1:{admin}\"\nreload_interval: 1s\n",
                self.port
            ),
        )
        .unwrap();
        let config = format!("{name}.yaml");
        let proc = Proc::spawn(
            self.path(),
            name,
            &bin("ward-proxy"),
            &["run", "--config", &config],
        );
        (proc, admin)
    }
}

fn ready(admin: u16) -> bool {
    http_get(admin, "/ready").is_some_and(|(s, _)| s == 200)
}

fn inbound(port: u16, app: std::net::SocketAddr) -> String {
    format!("inbound:\n  - {{ name: api, listen: \"127.0.0.1:{port}\", forward: \"{app}\" }}")
}

fn outbound(port: u16, upstream: u16) -> String {
    format!(
        "outbound:\n  - {{ name: backend, listen: \"127.0.0.1:{port}\", upstream: \"127.0.0.1:{upstream}\", server_id: \"{}\" }}",
        id("backend")
    )
}

/// A backend sidecar (inbound `api` in front of an echo app) and client sidecars, each with
/// an outbound listener to it, all enrolled and ready.
struct Pair {
    _procs: Vec<Proc>,
    backend_in: u16,
    backend_admin: u16,
    /// (admin port, outbound port) of each client, in order.
    clients: Vec<(u16, u16)>,
}

fn pair(ca: &Ca, clients: &[&str]) -> Pair {
    let app = echo_app();
    let backend_in = free_port();
    ca.token("backend");
    let (backend, backend_admin) =
        ca.sidecar("backend", "backend", &inbound(backend_in, app), clients);
    let mut procs = vec![backend];
    let mut ports = Vec::new();
    for name in clients {
        ca.token(name);
        let out = free_port();
        let (p, admin) = ca.sidecar(name, name, &outbound(out, backend_in), &[]);
        procs.push(p);
        ports.push((admin, out));
    }
    for admin in std::iter::once(backend_admin).chain(ports.iter().map(|p| p.0)) {
        wait_until(Duration::from_secs(20), "a sidecar to become ready", || {
            ready(admin)
        });
    }
    Pair {
        _procs: procs,
        backend_in,
        backend_admin,
        clients: ports,
    }
}

fn serial(admin: u16) -> Option<String> {
    identity(admin).and_then(|i| i["serial"].as_str().map(str::to_owned))
}

#[test]
fn renewals_a_ca_crash_a_replayed_token_and_a_revocation_under_traffic() {
    let mut ca = Ca::start("30s");
    let p = pair(&ca, &["frontend", "intruder"]);
    let backend_admin = p.backend_admin;
    let [(front_admin, front_out), (_, intruder_out)] = p.clients[..] else {
        panic!()
    };
    let traffic = Traffic::start(front_out);
    let mut intruder = connect(intruder_out).unwrap();
    echo_on(&mut intruder, "intruder is in").unwrap();

    let mut seen: [HashSet<String>; 2] = Default::default();
    let watch = |seen: &mut [HashSet<String>; 2]| {
        for (set, admin) in seen.iter_mut().zip([front_admin, backend_admin]) {
            set.extend(serial(admin));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        watch(&mut seen);
    }
    // SIGKILL mid-run; certificates stay valid, so traffic must not notice.
    ca.kill();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(4) {
        watch(&mut seen);
    }
    ca.serve();
    let at_restart = seen.clone();

    // The used join token of frontend, replayed by a new sidecar after the restart.
    let (replayer, replay_admin) = ca.sidecar("replayer", "frontend", "", &[]);
    wait_until(Duration::from_secs(20), "the replay to be refused", || {
        replayer.log_text().contains("token_used")
    });
    assert!(
        !ready(replay_admin),
        "a replayed token produced an identity"
    );

    // Renewals resume after the restart: three or more per sidecar in all.
    wait_until(
        Duration::from_secs(90),
        "three renewals after the restart",
        || {
            watch(&mut seen);
            seen.iter().all(|s| s.len() >= 4)
                && seen
                    .iter()
                    .zip(&at_restart)
                    .all(|(s, r)| s.len() >= r.len() + 2)
        },
    );

    // Revocation: the open connection is closed, new ones are refused.
    echo_on(&mut intruder, "still in").unwrap();
    let (code, err) = ca.ward(&["revoke", "--config", "ca.yaml", "--id", &id("intruder")]);
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    let mut buf = String::new();
    let closed = std::io::BufRead::read_line(&mut intruder, &mut buf);
    assert!(
        matches!(closed, Ok(0)),
        "open connection not closed: {closed:?} {buf:?}"
    );
    assert!(
        revoked.elapsed() < Duration::from_secs(9),
        "took {:?}",
        revoked.elapsed()
    );
    let again = connect(intruder_out).and_then(|mut c| echo_on(&mut c, "let me in"));
    assert!(
        again.is_err(),
        "revoked workload got a new connection through"
    );

    traffic.finish_without_failures(200);
    let options = ward_e2e::kit::debug_options_in_logs(ca.path());
    assert!(options.is_empty(), "{options:#?}");
}

/// One line over mTLS straight to a sidecar's inbound listener, as `material`.
fn direct(port: u16, roots: BundleStore, material: ward_e2e::Material) -> Result<(), String> {
    let config = raw_client_config(roots, material, &id("backend"));
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("backend").unwrap())
        .map_err(|e| e.to_string())?;
    let mut tls = std::io::BufReader::new(StreamOwned::new(conn, sock));
    echo_on_tls(&mut tls).map_err(ward_e2e::explain)
}

fn echo_on_tls(
    tls: &mut std::io::BufReader<StreamOwned<ClientConnection, std::net::TcpStream>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    tls.get_mut().write_all(b"old generation\n")?;
    tls.get_mut().flush()?;
    let mut line = String::new();
    match tls.read_line(&mut line)? {
        0 => Err(std::io::Error::other("closed")),
        _ => Ok(()),
    }
}

fn sha256(path: &Path) -> String {
    let der = load_certs(path).unwrap().remove(0);
    ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_root_rotation_under_traffic_drops_nothing() {
    let ca = Ca::start("20s");
    let p = pair(&ca, &["frontend"]);
    let backend_in = p.backend_in;
    let [(front_admin, front_out)] = p.clients[..] else {
        panic!()
    };
    let admins = [front_admin, p.backend_admin];
    let traffic = Traffic::start(front_out);
    let cadir = ca.path().join("ca");
    let old = Issuer::load(&cadir).unwrap();
    let both_roots = || {
        let roots = load_certs(&cadir.join("bundle.pem")).unwrap();
        BundleStore::new(TrustBundles::single(TD.parse().unwrap(), roots).unwrap())
    };
    // A certificate of the old generation is accepted before the rotation...
    direct(
        backend_in,
        both_roots(),
        issue_from(&old, &id("frontend"), &[]),
    )
    .unwrap();

    let config = ["--config", "ca.yaml"];
    let (code, err) = ca.ward(&[&["rotate", "prepare", "--root"][..], &config].concat());
    assert_eq!(code, 0, "{err}");
    let bundle =
        |admin| identity(admin).map_or(0, |i| i["trust_bundle_sha256"].as_array().unwrap().len());
    wait_until(
        Duration::from_secs(10),
        "sidecars to trust both roots",
        || admins.iter().all(|&a| bundle(a) == 2),
    );
    wait_until(Duration::from_secs(10), "activation to be allowed", || {
        ca.ward(&[&["rotate", "activate"][..], &config].concat()).0 == 0
    });
    let new_issuer = sha256(&cadir.join("issuer.pem"));
    let new_root = sha256(&cadir.join("root.pem"));
    wait_until(
        Duration::from_secs(30),
        "sidecars to renew under the new issuer",
        || {
            admins
                .iter()
                .all(|&a| identity(a).is_some_and(|i| i["issuer_sha256"] == new_issuer.as_str()))
        },
    );
    // Every certificate of the old generation was replaced by a renewal, so finish need not
    // wait for them to expire (ward-ca's rotate tests hold it to a live one that was not).
    wait_until(Duration::from_secs(40), "finish to be allowed", || {
        ca.ward(&[&["rotate", "finish"][..], &config].concat()).0 == 0
    });
    wait_until(
        Duration::from_secs(10),
        "sidecars to drop the old root",
        || {
            admins.iter().all(|&a| {
                identity(a)
                    .is_some_and(|i| i["trust_bundle_sha256"] == serde_json::json!([new_root]))
            })
        },
    );
    // ...and refused after it: the sidecar no longer trusts the old root.
    let refused = direct(
        backend_in,
        both_roots(),
        issue_from(&old, &id("frontend"), &[]),
    );
    assert!(
        refused.is_err(),
        "old generation still accepted after finish"
    );

    std::thread::sleep(Duration::from_secs(2));
    traffic.finish_without_failures(100);
    let options = ward_e2e::kit::debug_options_in_logs(ca.path());
    assert!(options.is_empty(), "{options:#?}");
}
