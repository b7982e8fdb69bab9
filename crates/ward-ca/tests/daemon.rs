//! The real `ward-ca` binary as operators run it: `serve` plus the operator commands on the
//! same state, curl driving the documented JSON API, openssl checking the result, a restart
//! that keeps tokens used and revocations in force, and SIGKILL in the middle of a burst of
//! enrollments that loses nothing that was returned.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use ward_ca::state::sqlite::{self, queries};
use ward_ca::state::unix_now;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

use ward_e2e::kit::free_port;

fn ward(dir: &Path, args: &[&str]) -> (i32, String, String) {
    ward_e2e::kit::run_in(Path::new(BIN), dir, args)
}

/// A CA directory and daemon config in a temp dir.
fn setup() -> (tempfile::TempDir, PathBuf, u16) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    assert_eq!(
        ward(
            &dir,
            &["init", "--dir", "ca", "--trust-domain", "example.org"]
        )
        .0,
        0
    );
    let port = free_port();
    std::fs::write(
        dir.join("ca.yaml"),
        format!("trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:{port}\"\nstate: state.db\ndns_names: [localhost]\nadmins: [\"spiffe://example.org/ward/admin\"]\nlimits: {{ enroll_per_ip_per_sec: 100000 }}\n"),
    )
    .unwrap();
    (tmp, dir, port)
}

fn curl(dir: &Path, args: &[&str]) -> (u16, String) {
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
        .args(args)
        .output()
        .expect("curl must be installed (make test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    match code.trim().parse() {
        Ok(code) if code != 0 => (code, body.to_owned()),
        // curl itself failed: keep its reason for the assertion message.
        _ => (0, String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn serve(dir: &Path, port: u16) -> Child {
    let child = Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--config", "ca.yaml"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while curl(dir, &[&format!("https://localhost:{port}/readyz")]).0 != 200 {
        assert!(Instant::now() < deadline, "ward-ca never became ready");
        std::thread::sleep(Duration::from_millis(25));
    }
    child
}

fn openssl_csr(dir: &Path, name: &str) -> String {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=ignored",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::read_to_string(dir.join(format!("{name}.csr"))).unwrap()
}

#[test]
fn curl_enrolls_and_renews_with_the_documented_api_and_a_restart_keeps_state() {
    let (_tmp, dir, port) = setup();
    let mut daemon = serve(&dir, port);
    let url = |p: &str| format!("https://localhost:{port}{p}");

    let (code, token, err) = ward(
        &dir,
        &[
            "token", "create", "--config", "ca.yaml", "--id", FRONTEND, "--ttl", "10m",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_owned();
    assert!(err.contains("single use"), "{err}");

    let enroll = json!({"csr": openssl_csr(&dir, "w"), "token": token}).to_string();
    std::fs::write(dir.join("enroll.json"), &enroll).unwrap();
    let (status, body) = curl(
        &dir,
        &[
            "--http2",
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@enroll.json",
            &url("/v1/enroll"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let resp: serde_json::Value = serde_json::from_str(&body).unwrap();
    std::fs::write(dir.join("chain.pem"), resp["chain"].as_str().unwrap()).unwrap();
    std::fs::write(dir.join("bundle.pem"), resp["bundle"].as_str().unwrap()).unwrap();
    for purpose in ["sslclient", "sslserver"] {
        let out = Command::new("openssl")
            .current_dir(&dir)
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                "bundle.pem",
                "-untrusted",
                "chain.pem",
                "chain.pem",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "chain.pem: OK");
    }

    std::fs::write(
        dir.join("renew.json"),
        json!({"csr": openssl_csr(&dir, "w2")}).to_string(),
    )
    .unwrap();
    let renew = |d: &Path| {
        curl(
            d,
            &[
                "--cert",
                "chain.pem",
                "--key",
                "w.key",
                "--data-binary",
                "@renew.json",
                &url("/v1/renew"),
            ],
        )
    };
    let (status, body) = renew(&dir);
    assert_eq!(status, 200, "{body}");
    let renewed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(renewed["spiffe_id"], FRONTEND);

    let serial = resp["serial"].as_str().unwrap();
    let (code, _, err) = ward(
        &dir,
        &[
            "revoke", "--config", "ca.yaml", "--serial", serial, "--reason", "test",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, list, _) = ward(
        &dir,
        &["certs", "list", "--config", "ca.yaml", "--id", FRONTEND],
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(serial) && l.contains("revoked")),
        "{list}"
    );
    let (_, tokens, _) = ward(&dir, &["token", "list", "--config", "ca.yaml"]);
    assert!(
        tokens.contains("used") && !tokens.contains(&token),
        "token list must never show the token: {tokens}"
    );

    // Restart: the used token stays used, the revocation stays in force.
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    let mut daemon = serve(&dir, port);
    let (status, body) = curl(&dir, &["--data-binary", "@enroll.json", &url("/v1/enroll")]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"token_used\""), "{body}");
    let (status, body) = renew(&dir);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"revoked\""), "{body}");
    daemon.kill().unwrap();
    let _ = daemon.wait();
}

#[test]
fn operator_commands_refuse_bad_input_in_one_line() {
    let (_tmp, dir, _port) = setup();
    for (args, want) in [
        (
            vec![
                "token",
                "create",
                "--config",
                "ca.yaml",
                "--id",
                "spiffe://other.org/x",
            ],
            "not in this CA's trust domain",
        ),
        (
            vec![
                "token", "create", "--config", "ca.yaml", "--id", FRONTEND, "--ttl", "90d",
            ],
            "between 1m and 30 days",
        ),
        (
            vec![
                "token",
                "revoke",
                "--config",
                "ca.yaml",
                "--token-id",
                "deadbeef",
            ],
            "no unrevoked join token",
        ),
        (
            vec!["revoke", "--config", "ca.yaml", "--serial", "xyz"],
            "not a hex serial",
        ),
        (
            vec!["certs", "list", "--config", "missing.yaml"],
            "cannot read",
        ),
    ] {
        let (code, _, err) = ward(&dir, &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
    std::fs::write(dir.join("bad.yaml"), "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:1\"\nstate: s.db\nttl: { default: 2h, max: 1h }\n").unwrap();
    let (code, _, err) = ward(&dir, &["serve", "--config", "bad.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.yaml:5:") && err.contains("ttl"), "{err}");
    // `check` says the same without starting anything, and accepts a good config.
    let (code, _, err) = ward(&dir, &["check", "--config", "bad.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.yaml:5:") && err.contains("ttl"), "{err}");
    let typo =
        "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:1\"\nstate: s.db\nadmin: []\n";
    std::fs::write(dir.join("typo.yaml"), typo).unwrap();
    let (code, _, err) = ward(&dir, &["check", "--config", "typo.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("typo.yaml:5:") && err.contains("admin"),
        "{err}"
    );
    let (code, out, err) = ward(&dir, &["check", "--config", "ca.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ok: ca.yaml (trust domain example.org"),
        "{out}"
    );
}

/// SIGKILL during a burst: the database opens, holds every certificate a client received,
/// and has no duplicate serial.
#[test]
fn sigkill_during_an_enrollment_burst_loses_nothing_returned() {
    let (_tmp, dir, port) = setup();
    let total = 400;
    let conn = sqlite::open(&dir.join("state.db")).unwrap();
    let mut secrets = Vec::new();
    for _ in 0..total {
        let t = ward_ca::authority::tokens::generate().unwrap();
        queries::insert_token(&conn, &t.record(FRONTEND, unix_now(), 600)).unwrap();
        secrets.push(t.secret);
    }
    drop(conn);
    let mut daemon = serve(&dir, port);
    let bundles = {
        let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
        ward_tls::BundleStore::new(
            ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
        )
    };
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap();
    let returned = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let workers: Vec<_> = (0..24)
        .map(|_| {
            let (returned, next, secrets, csr) =
                (returned.clone(), next.clone(), secrets.clone(), csr.clone());
            let connector =
                ward_e2e::https::connector(bundles.clone(), "spiffe://example.org/ward/ca", None);
            runtime.spawn(async move {
                let Ok(mut conn) = ward_e2e::https::Conn::open(&connector, addr).await else {
                    return;
                };
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(token) = secrets.get(i) else { return };
                    let body = json!({"csr": csr, "token": token}).to_string();
                    match conn.request("POST", "/v1/enroll", body.as_bytes()).await {
                        Ok(r) if r.status == 200 => returned
                            .lock()
                            .unwrap()
                            .push(r.json()["serial"].as_str().unwrap().to_owned()),
                        Ok(r) => panic!("unexpected refusal: {}", String::from_utf8_lossy(&r.body)),
                        Err(_) => return, // the daemon died
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while returned.lock().unwrap().len() < total / 4 {
        assert!(Instant::now() < deadline, "burst never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    daemon.kill().unwrap(); // SIGKILL
    let _ = daemon.wait();
    for w in workers {
        let _ = runtime.block_on(w);
    }
    let returned = returned.lock().unwrap().clone();
    assert!(
        returned.len() < total,
        "the kill landed after the burst; nothing was tested"
    );

    let conn = sqlite::open(&dir.join("state.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for serial in &returned {
        assert!(
            queries::find_cert(&conn, serial).unwrap().is_some(),
            "certificate {serial} was returned but not recorded"
        );
    }
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT serial) FROM certs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct);
    let used: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM join_tokens WHERE used_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let join_certs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM certs WHERE attestor = 'join_token'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        used, join_certs,
        "every consumed token has exactly its certificate"
    );
    assert!(join_certs as usize >= returned.len());
}
