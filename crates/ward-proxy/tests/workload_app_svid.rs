//! The app's X.509-SVID from the Workload API is weaker than the sidecar's own: copied out of
//! the app, its key renews nothing at the CA's `/v1/renew` and mints no JWT-SVID at `/v1/jwt`
//! (curl presenting it, as an attacker would), while the sidecar keeps obtaining both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::Command;

use support::ca::*;
use support::workload::*;
use support::*;
use ward_e2e::TestCa;

/// `curl` POSTing `body` to the CA at `path` with the client certificate `cert`/`key`: the
/// status line and body.
fn post_with_cert(ca: &Ca, path: &str, cert: &Path, key: &Path, body: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\nstatus=%{http_code}"])
        .arg("--cacert")
        .arg(ca.bundle())
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ])
        .arg(format!("{}{path}", ca.url()))
        .output()
        .expect("curl (make test installs it)");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A P-256 CSR made by openssl, as JSON-ready PEM.
fn openssl_csr(dir: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", "/CN=stolen", "-keyout"])
        .arg(dir.join("stolen.key"))
        .output()
        .expect("openssl (make test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_app_key_renews_nothing_and_mints_no_jwt() {
    let test_ca = TestCa::new("example.org");
    let pki = Pki::new();
    let (ca, proxy, socket) = ca_and_sidecar(&test_ca, &pki).await;
    let client = client(&socket).await;
    let svid = client.fetch_x509_svid().await.unwrap();

    // What the app holds, written out as an attacker who copied it would.
    let chain: String = svid
        .cert_chain()
        .iter()
        .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.as_ref().to_vec())))
        .collect();
    let cert = pki.file("app.pem", &chain);
    let key = pki.file(
        "app.key",
        &pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            svid.private_key().as_ref().to_vec(),
        )),
    );
    let csr = openssl_csr(&pki.path(""));
    let renew = post_with_cert(
        &ca,
        "/v1/renew",
        &cert,
        &key,
        &serde_json::json!({ "csr": csr }).to_string(),
    );
    assert!(renew.contains("status=403"), "{renew}");
    assert!(renew.contains("app_certificate"), "{renew}");
    let jwt = post_with_cert(&ca, "/v1/jwt", &cert, &key, r#"{"audience":["bank"]}"#);
    assert!(jwt.contains("status=403"), "{jwt}");
    assert!(jwt.contains("app_certificate"), "{jwt}");

    // The sidecar itself still gets JWT-SVIDs for the app (with its own SVID).
    let token = client
        .fetch_jwt_svid(&["bank"], None)
        .await
        .expect("the sidecar mints JWT-SVIDs with its own SVID");
    assert_eq!(token.spiffe_id().to_string(), FRONTEND);
    // And the CA recorded the app's certificate as one.
    let listing = ca.cli(&["certs", "list", "--output", "json"]).unwrap();
    assert!(listing.contains("\"app\""), "{listing}");
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
