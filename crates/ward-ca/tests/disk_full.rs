//! A full disk under the CA: the real daemon runs in its own mount namespace (`unshare -rm`)
//! with its state directory on a 384 KiB tmpfs, and enrolls until the database cannot grow.
//! From then on every enrollment is refused with 503 `state_unavailable` saying the disk is
//! full, and no certificate is handed out that the database does not hold: afterwards
//! `ward-ca certs list` (run in the same namespace, on the same full tmpfs) lists every
//! serial a client received.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;
use support::{AUDIENCE, ISSUER};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use ward_e2e::https::{connector, Conn};
use ward_e2e::jwt::{jwks, kube_claims, JwtSigner};

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_issuance_and_loses_nothing_returned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let init = Command::new(BIN)
        .current_dir(dir)
        .args(["init", "--dir", "ca", "--trust-domain", "example.org"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let signer = JwtSigner::es256("k1");
    std::fs::write(dir.join("jwks.json"), jwks(&[&signer])).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("ca.yaml"),
        format!(
            "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:{port}\"\nstate: state/state.db\n\
             attestors:\n  kubernetes: {{ issuer: \"{ISSUER}\", audience: {AUDIENCE}, jwks_file: jwks.json }}\n\
             limits: {{ enroll_per_ip_per_sec: 100000 }}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.join("state")).unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=384k tmpfs state
"$BIN" serve --config ca.yaml 2> ca.log &
echo $! > serve.pid
wait $! || true
"$BIN" certs list --config ca.yaml > certs.txt 2> certs.err"#;
    let mut ns = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .current_dir(dir)
        .env("BIN", BIN)
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) must be installed");

    let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
    let bundles = ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
    );
    let c = connector(bundles, "spiffe://example.org/ward/ca", None);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        if let Ok(conn) = Conn::open(&c, addr).await {
            break conn;
        }
        assert!(
            ns.try_wait().unwrap().is_none(),
            "the CA did not start: {}",
            std::fs::read_to_string(dir.join("ca.log")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the CA did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let (_key, csr) = support::csr();
    let (mut issued, mut refused) = (Vec::new(), Vec::new());
    for i in 0..20_000 {
        let token = signer.sign(&kube_claims(ISSUER, AUDIENCE, "ns", &format!("sa{i}"), 600));
        let body = json!({ "csr": csr, "token": token }).to_string();
        let r = conn
            .request("POST", "/v1/enroll", body.as_bytes())
            .await
            .unwrap();
        match r.status {
            200 => {
                assert!(
                    refused.is_empty(),
                    "issued again after refusing: {:?}",
                    r.json()
                );
                issued.push(r.json()["serial"].as_str().unwrap().to_owned());
            }
            _ => {
                refused.push((r.status, r.json()));
                if refused.len() == 20 {
                    break;
                }
            }
        }
    }
    assert!(
        issued.len() > 10,
        "the tmpfs filled before anything was issued"
    );
    assert_eq!(
        refused.len(),
        20,
        "the disk never filled ({} issued)",
        issued.len()
    );
    for (status, body) in &refused {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "state_unavailable", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("full"), "does not say why: {message}");
    }

    let pid = std::fs::read_to_string(dir.join("serve.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        ns.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(dir.join("certs.err")).unwrap_or_default()
    );
    let listed = std::fs::read_to_string(dir.join("certs.txt")).unwrap();
    for serial in &issued {
        assert!(
            listed.contains(serial.as_str()),
            "serial {serial} was returned but not recorded"
        );
    }
}
