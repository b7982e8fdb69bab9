//! The SPIFFE Workload API of a CA-backed sidecar, called by a client nobody here wrote (the
//! `spiffe` crate from crates.io) and by curl: the app's own X.509-SVID chains to the bundle
//! and is renewed on the open stream (through a CA restart), bundles and JWT-SVIDs arrive and
//! validate both through `ValidateJWTSVID` and locally with the crate's verifier; calls without
//! the security header, from a uid not allowed, or for another ID are refused; the socket is
//! never taken from a live server and is gone after shutdown. (Streams under load and through
//! a rotation: workload_streams.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use spiffe::{JwtSvid, SpiffeId, TrustDomain};
use support::ca::*;
use support::workload::*;
use support::*;
use ward_e2e::TestCa;

/// `openssl verify`: the chain (leaf first, DER) against the roots (DER).
fn openssl_verifies(dir: &Path, chain: &[Vec<u8>], roots: &[Vec<u8>]) -> bool {
    let pem = |ders: &[Vec<u8>]| {
        ders.iter()
            .map(|d| pem::encode(&pem::Pem::new("CERTIFICATE", d.clone())))
            .collect::<String>()
    };
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let leaf = write("leaf.pem", pem(&chain[..1]));
    let untrusted = write("untrusted.pem", pem(&chain[1..]));
    let roots = write("roots.pem", pem(roots));
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(&roots)
        .arg("-untrusted")
        .arg(&untrusted)
        .arg(&leaf)
        .output()
        .expect("openssl must be installed (make test installs it)");
    out.status.success()
}

async fn sidecar_serial(proxy: &ward_proxy::RunningProxy) -> String {
    let body = reqwest_get(proxy.admin, "/identity").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["serial"].as_str().unwrap().to_owned()
}

async fn reqwest_get(addr: std::net::SocketAddr, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Restarts `ca` on the same port (its state and CA directory kept).
async fn restart(ca: Ca, test_ca: &TestCa) -> Ca {
    let port = ca.running.addr.port();
    let dir = ca.dir;
    ca.running.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join("ca.yaml"))
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.path().join("ca.yaml"), &text).unwrap();
    let config = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir.path()).unwrap();
    let running = ward_ca::server::start(config).await.unwrap();
    Ca {
        ca_dir: test_ca.path(),
        dir,
        running,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_crate_gets_its_own_svid_bundles_and_jwts_and_renewals_on_the_stream() {
    let test_ca = TestCa::new("example.org");
    let pki = Pki::new();
    let (ca, proxy, socket) = ca_and_sidecar(&test_ca, &pki).await;
    let mode = std::fs::metadata(&socket).unwrap().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "only our own uid is allowed: owner-only socket"
    );
    let client = client(&socket).await;

    // X.509: the app's own SVID (not the sidecar's certificate), chaining to the bundle.
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(svid.spiffe_id().to_string(), FRONTEND);
    let sidecar = sidecar_serial(&proxy).await;
    assert_ne!(
        hex(&serial(&svid)),
        sidecar,
        "the app got the sidecar's certificate"
    );
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = TrustDomain::new("example.org").unwrap();
    let roots: Vec<Vec<u8>> = bundles
        .get(&td)
        .expect("a bundle for example.org")
        .authorities()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    let chain: Vec<Vec<u8>> = svid
        .cert_chain()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert!(openssl_verifies(pki.path("").as_path(), &chain, &roots));
    let stranger = TestCa::new("example.org");
    let forged_roots: Vec<Vec<u8>> = ward_tls::pem::load_certs(&stranger.path().join("bundle.pem"))
        .unwrap()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert!(!openssl_verifies(
        pki.path("").as_path(),
        &chain,
        &forged_roots
    ));

    // JWT: fetched, validated by ValidateJWTSVID and by the crate itself against JWT bundles.
    let token = client.fetch_jwt_token(["sts.example"], None).await.unwrap();
    let checked = client
        .validate_jwt_token("sts.example", &token)
        .await
        .unwrap();
    assert_eq!(checked.spiffe_id().to_string(), FRONTEND);
    assert!(client
        .validate_jwt_token("someone-else", &token)
        .await
        .is_err());
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    let local = JwtSvid::parse_and_validate(&token, &jwt_bundles, &["sts.example"]).unwrap();
    assert_eq!(local.spiffe_id().to_string(), FRONTEND);
    assert!(JwtSvid::parse_and_validate(&token, &jwt_bundles, &["nope"]).is_err());
    // Cached per audience set: the same token again, in any order of the same set.
    assert_eq!(
        client.fetch_jwt_token(["sts.example"], None).await.unwrap(),
        token
    );
    // Another ID is not this workload's to ask for.
    let other = SpiffeId::new(BACKEND).unwrap();
    assert!(client
        .fetch_jwt_token(["sts.example"], Some(&other))
        .await
        .is_err());

    // The stream: the current SVID at once, then renewals, also across a CA restart.
    let mut stream = client.stream_x509_svids().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let ca = restart(ca, &test_ca).await;
    let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("no renewal on the stream within 30 s")
        .unwrap()
        .unwrap();
    assert_ne!(
        serial(&first),
        serial(&next),
        "the stream repeated the same SVID"
    );
    assert_eq!(next.spiffe_id().to_string(), FRONTEND);

    drop(stream);
    drop(client);
    proxy.shutdown().await;
    assert!(!socket.exists(), "the socket outlived the sidecar");
    ca.running.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}

/// curl speaking gRPC over the socket: the response headers (and trailers), as text; curl's
/// exit status and errors too when it fails. Run off the runtime's workers, which serve the
/// sidecar under test. A stream that is admitted stays open: curl stops after `max_time`.
async fn grpc_by_curl(socket: &Path, method: &str, headers: &[&str], max_time: u32) -> String {
    let socket = socket.to_path_buf();
    let method = method.to_owned();
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--http2-prior-knowledge", "--max-time"])
            .arg(max_time.to_string())
            .arg("--unix-socket")
            .arg(&socket)
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
        for h in &headers {
            cmd.args(["-H", h]);
        }
        // An empty request message: flag 0, length 0.
        cmd.args(["--data-binary", "@-"])
            .arg(format!("http://localhost/SpiffeWorkloadAPI/{method}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("curl must be installed (make test installs it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&[0, 0, 0, 0, 0])
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if !out.status.success() {
            text.push_str(&format!(
                "\n[curl {}: {}]",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        text
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_the_header_or_not_allowed_are_refused_and_the_socket_is_guarded() {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, CA_EXTRA).await;
    let pki = Pki::new();
    let socket = pki.path("workload.sock");
    let me = own_uid(&pki.path(""));
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, &[me]))
        .await
        .unwrap();

    // No security header: InvalidArgument (gRPC status 3), before anything else is looked at.
    let bare = grpc_by_curl(&socket, "FetchJWTBundles", &[], 20).await;
    assert!(bare.contains("grpc-status: 3"), "{bare}");
    assert!(bare.contains("security%20header%20missing"), "{bare}");
    let with = grpc_by_curl(&socket, "FetchJWTBundles", &["workload.spiffe.io: true"], 2).await;
    assert!(with.contains("200"), "{with}");
    assert!(!with.contains("grpc-status: 3"), "{with}");

    // A second sidecar may not take over a live socket.
    let pki2 = Pki::new();
    let err = ward_proxy::start(config(&pki2, &ca, &socket, &[me]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already listens"), "{err}");
    assert!(socket.exists());
    proxy.shutdown().await;
    assert!(!socket.exists());

    // A uid that is not ours: the kernel says who calls, so we are refused (PermissionDenied).
    let not_me = me.wrapping_add(4242);
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, &[not_me]))
        .await
        .unwrap();
    let client = client(&socket).await;
    let err = client.fetch_x509_svid().await.unwrap_err().to_string();
    assert!(err.contains("may not use this Workload API"), "{err}");
    let denied = grpc_by_curl(&socket, "FetchX509SVID", &["workload.spiffe.io: true"], 20).await;
    assert!(denied.contains("grpc-status: 7"), "{denied}");
    assert!(
        metric(
            &proxy,
            "ward_workload_api_calls_total{method=\"FetchX509SVID\",result=\"permission_denied\"}"
        ) >= 2.0
    );
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
