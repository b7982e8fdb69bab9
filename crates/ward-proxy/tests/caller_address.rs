//! The caller's address, for the application.
//!
//! - TCP mode with `proxy_protocol: v2`: the header reaches the app before the first byte,
//!   parsed by receivers nobody here wrote: the `ppp` crate (addresses, the `PP2_TYPE_SSL`
//!   TLV, the SPIFFE ID in TLV 0xE0, the payload intact after it) and HAProxy with
//!   `accept-proxy` (which takes the addresses from it and says so).
//! - HTTP mode: `x-forwarded-for` is the connection's address and `x-forwarded-proto` is
//!   `https`; what the caller sent is replaced, or appended to with `x_forwarded_for: append`.
//! - `proxy_protocol` on an HTTP listener, or `x_forwarded_for` on a TCP one, is refused at
//!   its line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use ppp::v2::{Addresses, Command as PpCommand, Header, Protocol};
use rustls_pki_types::ServerName;
use support::http::{curl, json, setup_with, POLICY};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A sidecar for BACKEND whose TCP listener `api` forwards to `forward` with a PROXY v2
/// header.
async fn pp_proxy(pki: &Pki, forward: SocketAddr) -> ward_proxy::RunningProxy {
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file("policy.yaml", ALLOW_FRONTEND);
    let text = format!(
        "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
         inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{forward}\", proxy_protocol: v2 }}\n\
         admin: \"127.0.0.1:0\"\n",
        cert.display(),
        key.display(),
        pki.bundle().display(),
        policy.display()
    );
    let config = ward_proxy::Config::load(&pki.file("proxy.yaml", &text)).unwrap();
    ward_proxy::start(config).await.unwrap()
}

/// Connects as FRONTEND over mTLS; returns the stream and its local (client) address.
async fn frontend(
    pki: &Pki,
    addr: SocketAddr,
) -> (tokio_rustls::client::TlsStream<TcpStream>, SocketAddr) {
    let connector = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("backend.test").unwrap();
    (connector.connect(name, tcp).await.unwrap(), local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_v2_header_as_the_ppp_crate_reads_it() {
    let pki = Pki::new();
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (mut sock, _) = app.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        while !bytes.ends_with(b"hello") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the payload: {bytes:?}");
            bytes.extend_from_slice(&buf[..n]);
        }
        sock.write_all(b"ok").await.unwrap();
        bytes
    });
    let proxy = pp_proxy(&pki, app_addr).await;
    let listener = addr_of(&proxy.inbound, "api");
    let (mut tls, local) = frontend(&pki, listener).await;
    tls.write_all(b"hello").await.unwrap();
    let mut answer = [0u8; 2];
    tls.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"ok");

    let bytes = received.await.unwrap();
    let header = Header::try_from(&bytes[..]).expect("a PROXY v2 header ppp accepts");
    assert_eq!(header.command, PpCommand::Proxy);
    assert_eq!(header.protocol, Protocol::Stream);
    let Addresses::IPv4(a) = header.addresses else {
        panic!("{:?}", header.addresses)
    };
    assert_eq!(SocketAddr::from((a.source_address, a.source_port)), local);
    assert_eq!(
        SocketAddr::from((a.destination_address, a.destination_port)),
        listener
    );
    let tlvs: Vec<_> = header.tlvs().map(Result::unwrap).collect();
    let spiffe = tlvs
        .iter()
        .find(|t| t.kind == 0xE0)
        .expect("the SPIFFE ID TLV");
    assert_eq!(&spiffe.value[..], FRONTEND.as_bytes());
    let ssl = tlvs.iter().find(|t| t.kind == 0x20).expect("PP2_TYPE_SSL");
    assert_eq!(
        ssl.value[0] & 0x07,
        0x07,
        "SSL, cert on this connection and session"
    );
    assert_eq!(&ssl.value[1..5], &[0, 0, 0, 0], "verified");
    assert!(ssl.value.windows(7).any(|w| w == b"TLSv1.3"));
    assert_eq!(
        &bytes[header.len()..],
        b"hello",
        "the payload follows, untouched"
    );
    drop(tls);
    proxy.shutdown().await;
}

/// A child process killed when the test ends, passed or failed.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_accept_proxy_takes_the_callers_address_from_it() {
    let pki = Pki::new();
    let port = free_port();
    let cfg = pki.file(
        "haproxy.cfg",
        &format!(
            "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n\
             \x20 http-request return status 200 content-type text/plain lf-string \"proxied=%[fc_rcvd_proxy] src=%[src]:%[src_port] dst=%[dst]:%[dst_port]\"\n"
        ),
    );
    let check = Command::new("haproxy")
        .args(["-c", "-f", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _haproxy = Killed(
        Command::new("haproxy")
            .args(["-db", "-f", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy must be installed (make test installs it)"),
    );
    ward_e2e::kit::wait_until(Duration::from_secs(10), "haproxy to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let proxy = pp_proxy(&pki, SocketAddr::from(([127, 0, 0, 1], port))).await;
    let listener = addr_of(&proxy.inbound, "api");
    let (mut tls, local) = frontend(&pki, listener).await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tls.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let expected = format!("proxied=1 src={local} dst={listener}");
    assert!(text.ends_with(&expected), "{text}\nexpected {expected}");
    drop(tls);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_listeners_set_x_forwarded_for_and_proto() {
    let spoof = [
        "-H",
        "x-forwarded-for: 203.0.113.9",
        "-H",
        "x-forwarded-proto: http",
    ];
    let s = setup_with(POLICY, "").await;
    let (_, status, body) = curl(&s, "frontend", s.port, &spoof, "/v1/orders/1");
    assert_eq!(status, 200, "{body}");
    let seen = json(&body);
    assert_eq!(seen["xff"], "127.0.0.1", "the caller's claim is replaced");
    assert_eq!(seen["xfp"], "https");
    let (_, _, body) = curl(&s, "frontend", s.port, &[], "/v1/orders/1");
    assert_eq!(json(&body)["xff"], "127.0.0.1");

    let s = setup_with(POLICY, ", x_forwarded_for: append").await;
    let (_, status, body) = curl(&s, "frontend", s.port, &spoof, "/v1/orders/1");
    assert_eq!(status, 200, "{body}");
    let seen = json(&body);
    assert_eq!(seen["xff"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["xfp"], "http");
}

#[test]
fn each_option_only_where_it_means_something() {
    let pki = Pki::new();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file("policy.yaml", ALLOW_FRONTEND);
    for (listener, problem) in [
        (
            "protocol: http, proxy_protocol: v2",
            "proxy_protocol applies to protocol: tcp",
        ),
        (
            "x_forwarded_for: append",
            "x_forwarded_for applies to protocol: http",
        ),
        ("proxy_protocol: v1", "unknown variant `v1`"),
    ] {
        let text = format!(
            "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
             inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"127.0.0.1:1\", {listener} }}\n",
            cert.display(),
            key.display(),
            pki.bundle().display(),
            policy.display()
        );
        let err = ward_proxy::Config::load(&pki.file("bad.yaml", &text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.yaml:6:") && err.contains(problem),
            "{listener}: {err}"
        );
    }
}
