//! Hostile network input at an inbound listener: bytes that are not TLS, a ClientHello that
//! stops half-way, and a crowd of connections that never send a byte. None of it reaches the
//! app, each is counted, the admin endpoints keep answering, and a real client still gets
//! through afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn failures(proxy: &ward_proxy::RunningProxy, reason: &str) -> f64 {
    handshake_failures(proxy, "api", "inbound", reason)
}

/// True when the peer ends the connection within `limit` (whatever it sent first, such as a
/// TLS alert).
async fn ends_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, until_end).await.is_ok()
}

/// GET on the admin port with a raw HTTP/1.1 request; the status code.
async fn admin_status(proxy: &ward_proxy::RunningProxy, path: &str) -> u16 {
    let mut s = TcpStream::connect(proxy.admin).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("admin answered in time")
        .unwrap();
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_half_client_hellos_are_refused_and_counted() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(
        &pki,
        &app,
        ALLOW_FRONTEND,
        "limits: { handshake_timeout: 3s }\n",
    )
    .await;
    let api = addr_of(&proxy.inbound, "api");

    // Plain HTTP, random bytes, and a TLS record header with a nonsense length (rustls refuses
    // a record longer than TLS allows from its header alone): each closed at once, well before
    // the 3 s handshake timeout (measured here: under a millisecond), never relayed.
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03][..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00, 0x01][..],
    ] {
        let mut s = TcpStream::connect(api).await.unwrap();
        let started = Instant::now();
        s.write_all(garbage).await.unwrap();
        assert!(
            ends_within(&mut s, Duration::from_secs(5)).await,
            "{garbage:?} was not closed"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{garbage:?}: closed only after {:?}, not at once",
            started.elapsed()
        );
    }

    // A ClientHello cut off half-way: the record promises more than arrives.
    let before = failures(&proxy, "handshake_timeout");
    let mut half = TcpStream::connect(api).await.unwrap();
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03,
    ];
    hello.extend([0x42; 40]);
    half.write_all(&hello).await.unwrap();
    assert!(ends_within(&mut half, Duration::from_secs(5)).await);
    eventually("half hello cut at the handshake timeout", || {
        failures(&proxy, "handshake_timeout") == before + 1.0
    })
    .await;

    assert_eq!(app.accepted(), 0, "nothing reached the app");
    try_echo(&pki.client(pki.ca.issue(FRONTEND), BACKEND), api)
        .await
        .unwrap();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_silent_connections_is_capped_then_evicted() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let limits = "limits: { max_connections: 100, handshake_timeout: 1s }\n";
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, limits).await;
    let api = addr_of(&proxy.inbound, "api");

    // Thousands of silent sockets in this process: make sure its descriptor limit allows them.
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), "--nofile=8192:"])
        .status()
        .expect("prlimit (util-linux) must be installed");
    assert!(
        status.success(),
        "cannot raise this test's descriptor limit to 8192"
    );
    let mut crowd = Vec::new();
    for _ in 0..3000 {
        crowd.push(TcpStream::connect(api).await.unwrap());
    }
    eventually("the excess refused at once", || {
        metric(
            &proxy,
            "ward_connections_refused_total{listener=\"api\",direction=\"inbound\"}",
        ) >= 2900.0
    })
    .await;
    // The admin side is not part of the cap and keeps answering.
    assert_eq!(admin_status(&proxy, "/live").await, 200);
    assert_eq!(admin_status(&proxy, "/metrics").await, 200);
    eventually("the silent ones evicted at the handshake timeout", || {
        metric(
            &proxy,
            "ward_connections_active{listener=\"api\",direction=\"inbound\"}",
        ) == 0.0
            && failures(&proxy, "handshake_timeout") >= 100.0
    })
    .await;
    drop(crowd);
    try_echo(&pki.client(pki.ca.issue(FRONTEND), BACKEND), api)
        .await
        .unwrap();
    assert_eq!(app.accepted(), 1, "only the real client reached the app");
    proxy.shutdown().await;
}
