//! Post-quantum key exchange: ward pairs negotiate `X25519MLKEM768` in one round trip (TCP and
//! HTTP mode, full and resumed), clients without ML-KEM (OpenSSL's s_client and curl) get
//! X25519 or P-256 and still work, and a listener that requires the hybrid group refuses them
//! with a counted reason. Config lists are checked at their line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_proxy::{Config, RunningProxy};

const HYBRID: &str = "X25519MLKEM768";

/// A sidecar for BACKEND with one inbound listener `api` (`protocol`, `kx` appended to its
/// map, e.g. `, key_exchange: [X25519]`).
async fn backend(pki: &Pki, app: SocketAddr, protocol: &str, kx: &str) -> RunningProxy {
    let (cert, key) = pki.write(
        "backend",
        &pki.ca.issue_with_dns(BACKEND, &["localhost".into()]),
    );
    let listener = format!(", protocol: {protocol}{kx}");
    let config = inbound_config_with(pki, &cert, &key, app, ALLOW_FRONTEND, &listener, "");
    ward_proxy::start(config).await.unwrap()
}

/// A sidecar for FRONTEND with one outbound listener `backend` to `upstream`.
async fn frontend(pki: &Pki, upstream: SocketAddr, protocol: &str, kx: &str) -> RunningProxy {
    let listener = format!(", protocol: {protocol}{kx}");
    frontend_proxy_with(pki, upstream, BACKEND, &listener).await
}

/// `ward_tls_handshakes_total` for listener, direction, group and kind (0 if never counted).
fn handshakes(p: &RunningProxy, listener: &str, dir: &str, group: &str, kind: &str) -> f64 {
    metric_or_zero(
        p,
        &format!("ward_tls_handshakes_total{{listener=\"{listener}\",direction=\"{dir}\",group=\"{group}\",kind=\"{kind}\"}}"),
    )
}

/// Every handshake `p` counted, as (group, kind, count) lines, for failure messages and for
/// checking nothing but the expected group and kind occurred.
fn all_handshakes(p: &RunningProxy) -> Vec<String> {
    p.metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("ward_tls_handshakes_total{"))
        .map(str::to_owned)
        .collect()
}

/// One echo through the frontend's TCP outbound listener (a new connection each time).
async fn echo_through(front: &RunningProxy, msg: &[u8]) {
    let mut sock = TcpStream::connect(addr_of(&front.outbound, "backend"))
        .await
        .unwrap();
    assert_eq!(round_trip(&mut sock, msg).await.unwrap(), msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pair_negotiates_the_hybrid_group_without_a_retry_and_resumes_with_it() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let back = backend(&pki, app.addr, "tcp", "").await;
    let front = frontend(&pki, addr_of(&back.inbound, "api"), "tcp", "").await;
    echo_through(&front, b"first").await;
    echo_through(&front, b"second").await;
    for (p, listener, dir) in [(&back, "api", "inbound"), (&front, "backend", "outbound")] {
        let seen = all_handshakes(p);
        assert_eq!(
            handshakes(p, listener, dir, HYBRID, "full"),
            1.0,
            "{seen:#?}"
        );
        // The resumed connection ran a fresh key exchange (psk_dhe_ke) with the same group.
        assert_eq!(
            handshakes(p, listener, dir, HYBRID, "resumed"),
            1.0,
            "{seen:#?}"
        );
        assert_eq!(
            seen.len(),
            2,
            "only hybrid handshakes, none after a retry: {seen:#?}"
        );
    }
    front.shutdown().await;
    back.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pair_negotiates_the_hybrid_group() {
    let pki = Pki::new();
    let (app, _) = http::mirror_app().await;
    let back = backend(&pki, app, "http", "").await;
    let front = frontend(&pki, addr_of(&back.inbound, "api"), "http", "").await;
    let mut sock = TcpStream::connect(addr_of(&front.outbound, "backend"))
        .await
        .unwrap();
    sock.write_all(b"GET /x HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(
        handshakes(&back, "api", "inbound", HYBRID, "full"),
        1.0,
        "{:#?}",
        all_handshakes(&back)
    );
    assert_eq!(
        handshakes(&front, "backend", "outbound", HYBRID, "full"),
        1.0,
        "{:#?}",
        all_handshakes(&front)
    );
    front.shutdown().await;
    back.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classical_client_list_is_followed_and_a_hybrid_only_listener_refuses_it() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    // The client's preference decides among the groups the server allows: X25519 at once.
    let back = backend(&pki, app.addr, "tcp", "").await;
    let front = frontend(
        &pki,
        addr_of(&back.inbound, "api"),
        "tcp",
        ", key_exchange: [X25519, secp256r1]",
    )
    .await;
    echo_through(&front, b"classical").await;
    assert_eq!(
        handshakes(&back, "api", "inbound", "X25519", "full"),
        1.0,
        "{:#?}",
        all_handshakes(&back)
    );
    front.shutdown().await;

    // A hybrid-only listener: the classical sidecar is refused on both ends, counted.
    let strict = backend(&pki, app.addr, "tcp", ", key_exchange: [X25519MLKEM768]").await;
    let front = frontend(
        &pki,
        addr_of(&strict.inbound, "api"),
        "tcp",
        ", key_exchange: [X25519]",
    )
    .await;
    let mut sock = TcpStream::connect(addr_of(&front.outbound, "backend"))
        .await
        .unwrap();
    assert!(
        round_trip(&mut sock, b"x").await.is_err(),
        "relayed without a shared group"
    );
    eventually("the refusal counted", || {
        handshake_failures(&strict, "api", "inbound", "no_shared_key_exchange") == 1.0
    })
    .await;
    assert_eq!(handshakes(&strict, "api", "inbound", "X25519", "full"), 0.0);
    // A ward client with the default list still gets through it, with the hybrid group.
    let hybrid = frontend(&pki, addr_of(&strict.inbound, "api"), "tcp", "").await;
    echo_through(&hybrid, b"pq").await;
    assert_eq!(handshakes(&strict, "api", "inbound", HYBRID, "full"), 1.0);
    for p in [front, hybrid, strict, back] {
        p.shutdown().await;
    }
}

/// OpenSSL's own s_client (3.0 on Debian 12 has no ML-KEM) with its default groups, or with
/// `groups`, presenting FRONTEND's SVID; returns (stdout, stderr).
fn s_client(pki: &Pki, port: u16, groups: Option<&str>) -> (String, String) {
    let p = |f: &str| pki.path(f).to_str().unwrap().to_owned();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-verify_return_error",
    ])
    .args(["-CAfile", pki.bundle().to_str().unwrap()])
    .args([
        "-cert",
        &p("frontend.pem"),
        "-cert_chain",
        &p("frontend.pem"),
    ])
    .args(["-key", &p("frontend.key")]);
    if let Some(g) = groups {
        cmd.args(["-groups", g]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (make test installs it)");
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether this machine's OpenSSL has ML-KEM (3.5 and later), which changes what its
/// defaults negotiate.
fn openssl_has_mlkem() -> bool {
    let out = Command::new("openssl")
        .args(["list", "-kem-algorithms"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("ML-KEM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_and_curl_without_mlkem_negotiate_classical_groups() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    pki.write("frontend", &pki.ca.issue(FRONTEND));
    let back = backend(&pki, app.addr, "tcp", "").await;
    let port = addr_of(&back.inbound, "api").port();
    let expected = if openssl_has_mlkem() {
        HYBRID
    } else {
        "X25519"
    };
    // s_client sends its Finished (with its certificate) before it reads stdin, so the
    // handshake is complete on the listener's side once counted there.
    let (out, err) = s_client(&pki, port, None);
    assert!(out.contains("Verification: OK"), "{out}\n{err}");
    if expected != HYBRID {
        assert!(out.contains("Server Temp Key: X25519"), "{out}");
    }
    eventually("s_client's handshake counted", || {
        handshakes(&back, "api", "inbound", expected, "full") == 1.0
    })
    .await;
    let (out, err) = s_client(&pki, port, Some("P-256"));
    assert!(
        out.contains("Server Temp Key: ECDH, prime256v1"),
        "{out}\n{err}"
    );
    eventually("the P-256 handshake counted", || {
        handshakes(&back, "api", "inbound", "secp256r1", "full") == 1.0
    })
    .await;

    // curl speaks TLS to the listener; the echo app answers no HTTP, so curl's error after
    // the handshake is expected: what counts is the completed handshake's group.
    let before = handshakes(&back, "api", "inbound", expected, "full");
    let _ = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            pki.bundle().to_str().unwrap(),
        ])
        .args(["--cert", pki.path("frontend.pem").to_str().unwrap()])
        .args(["--key", pki.path("frontend.key").to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("curl must be installed (make test installs it)");
    eventually("curl's handshake counted", || {
        handshakes(&back, "api", "inbound", expected, "full") == before + 1.0
    })
    .await;

    // A hybrid-only listener refuses OpenSSL 3.0 with a handshake failure, counted.
    if !openssl_has_mlkem() {
        let strict = backend(&pki, app.addr, "tcp", ", key_exchange: [X25519MLKEM768]").await;
        let port = addr_of(&strict.inbound, "api").port();
        let (out, err) = s_client(&pki, port, None);
        assert!(out.contains("Cipher is (NONE)"), "{out}");
        assert!(err.contains("handshake failure"), "{err}");
        eventually("the refusal counted", || {
            handshake_failures(&strict, "api", "inbound", "no_shared_key_exchange") == 1.0
        })
        .await;
        strict.shutdown().await;
    }
    back.shutdown().await;
}

#[test]
fn key_exchange_lists_are_checked_at_their_line() {
    let pki = Pki::new();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file("policy.yaml", ALLOW_FRONTEND);
    for (kx, line, want) in [
        ("[X25519, kyber]", 7, "\"api\": key_exchange: unknown group \"kyber\" (known: X25519MLKEM768, X25519, secp256r1)"),
        ("[X25519, X25519]", 7, "key_exchange names X25519 twice"),
        ("[]", 7, "key_exchange must name at least one group"),
    ] {
        let text = format!(
            "trust_domain: example.org\n\
             identity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
             policy: {}\n\
             inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"127.0.0.1:1\",\n      key_exchange: {kx} }}\n",
            cert.display(), key.display(), pki.bundle().display(), policy.display(),
        );
        let path = pki.file("bad.yaml", &text);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("bad.yaml:{line}:")), "{err}");
        assert!(err.contains(want), "{err}");
    }
}
