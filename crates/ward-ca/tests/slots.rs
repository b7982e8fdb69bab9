//! Nobody can hold the CA's connection slots: an anonymous TLS connection that sends nothing
//! (or half an HTTP/2 preface, or a preface and no request) is closed at
//! `limits.request_timeout`, an idle keep-alive connection at `limits.idle_timeout`, and one
//! client address gets at most `limits.max_connections_per_ip` connections at once, while
//! another address still enrolls. The public listeners (ops, OIDC discovery, the bundle
//! endpoint) are gated the same way, each with slots of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use ward_e2e::https::{connector, Conn};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const LIMITS: &str =
    "limits: { request_timeout: 1s, idle_timeout: 2s, max_connections_per_ip: 8 }\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_ca_and_silent_connections_are_closed() {
    let h = Harness::start(LIMITS).await;
    let c = connector(h.ca.bundles(), "spiffe://example.org/ward/ca", None);
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(
            Conn::open_from(&c, h.running.addr, ip("127.0.0.1"))
                .await
                .unwrap(),
        );
    }
    // The ninth from the same address is refused at once...
    let ninth = async {
        let mut conn = Conn::open_from(&c, h.running.addr, ip("127.0.0.1")).await?;
        conn.request("GET", "/v1/bundle", b"").await
    };
    assert!(
        ninth.await.is_err(),
        "a ninth connection from one address was served"
    );
    // ...while another address enrolls.
    let mut other = Conn::open_from(&c, h.running.addr, ip("127.0.0.2"))
        .await
        .unwrap();
    let (_, csr_pem) = csr();
    let body = json!({"csr": csr_pem, "token": h.token(FRONTEND, 600)});
    let resp = other
        .request("POST", "/v1/enroll", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    assert!(h.metric("ward_ca_connections_refused_total{reason=\"per_ip_limit\"}") >= 1.0);

    // The silent eight are closed at the first-request deadline (1 s), not held.
    let started = Instant::now();
    for conn in &mut silent {
        assert!(
            conn.closed_within(Duration::from_secs(5)).await,
            "a silent connection stayed open"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Their slots are free again.
    let mut again = Conn::open_from(&c, h.running.addr, ip("127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(
        again
            .request("GET", "/v1/bundle", b"")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_prefaces_and_idle_keep_alive_connections_are_closed_in_time() {
    let h = Harness::start(LIMITS).await;
    let c = connector(h.ca.bundles(), "spiffe://example.org/ward/ca", None);
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // Half an HTTP/2 preface; a whole one with its SETTINGS and no request; half a request head.
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let whole: Vec<u8> = preface.iter().chain(settings.iter()).copied().collect();
    for sent in [
        &preface[..10],
        &whole[..],
        b"GET /v1/bundle HTTP/1.1\r\nhost: x\r\n",
    ] {
        let mut conn = Conn::open(&c, h.running.addr).await.unwrap();
        conn.send_raw(sent).await.unwrap();
        let started = Instant::now();
        assert!(
            conn.closed_within(Duration::from_secs(5)).await,
            "{sent:?} held the connection"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    }
    // A keep-alive connection that answered a request and then idles is closed after
    // idle_timeout (2 s), not before the request deadline would have (1 s) cut it.
    let mut conn = Conn::open(&c, h.running.addr).await.unwrap();
    assert_eq!(
        conn.request("GET", "/v1/bundle", b"").await.unwrap().status,
        200
    );
    let started = Instant::now();
    assert!(
        conn.closed_within(Duration::from_secs(6)).await,
        "idle keep-alive stayed open"
    );
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    // A connection that keeps asking stays.
    let mut busy = Conn::open(&c, h.running.addr).await.unwrap();
    for _ in 0..6 {
        assert_eq!(
            busy.request("GET", "/v1/bundle", b"").await.unwrap().status,
            200
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

#[test]
fn the_limits_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (limits, problem) in [
        (
            "{ max_connections_per_ip: 0 }",
            "max_connections_per_ip must be at least 1",
        ),
        ("{ idle_timeout: 0s }", "idle_timeout must be at least 1s"),
    ] {
        let text = format!(
            "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:0\"\nstate: state.db\nlimits: {limits}\n"
        );
        let err = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.yaml:5:") && err.contains(problem), "{err}");
    }
}

/// Shutdown drains: a request in flight (its body still arriving) is answered, nothing new is
/// accepted, and the drain ends as soon as that request is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight_and_accepts_nothing_new() {
    let h = Harness::start("").await;
    let c = connector(h.ca.bundles(), "spiffe://example.org/ward/ca", None);
    let (_, csr_pem) = csr();
    let body = json!({"csr": csr_pem, "token": h.token(FRONTEND, 600)}).to_string();
    let mut slow = Conn::open(&c, h.running.addr).await.unwrap();
    // `Expect: 100-continue`: the CA answers 100 once the handler reads the body, so the
    // request is known to be in flight before the shutdown starts.
    let head = format!(
        "POST /v1/enroll HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.send_raw(head.as_bytes()).await.unwrap();
    assert_eq!(slow.read_response().await.unwrap().status, 100);
    slow.send_raw(&body.as_bytes()[..10]).await.unwrap();
    let addr = h.running.addr;
    let started = Instant::now();
    let drain = tokio::spawn(h.running.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !drain.is_finished(),
        "the drain did not wait for the request in flight"
    );
    assert!(
        Conn::open(&c, addr).await.is_err(),
        "a new connection was accepted while draining"
    );
    slow.send_raw(&body.as_bytes()[10..]).await.unwrap();
    let resp = slow.read_response().await.unwrap();
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    drain.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A plain HTTP/1.1 GET to `addr` from source address `from`: the status, or `None` when no
/// answer came within 3 s.
async fn get_from(from: &str, addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((ip(from), 0).into()).unwrap();
    let ask = async {
        let mut s = socket.connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: ca\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(3), ask)
        .await
        .ok()
        .flatten()
}

/// Whether the server closes `conn` within `limit` (EOF or reset).
async fn tcp_closed_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(limit, conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_starve_the_public_listeners() {
    let extra = format!("{LIMITS}ops: \"127.0.0.1:0\"\n{}", jwt::CONFIG);
    let h = Harness::start(&extra).await;
    let ops = h.running.ops_addr.expect("ops listener");
    let oidc = h.running.oidc_addr.expect("OIDC listener");
    // One address opens far more idle connections than any listener has slots.
    let mut idle = Vec::new();
    for addr in [ops, oidc] {
        for _ in 0..300 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((ip("127.0.0.3"), 0).into()).unwrap();
            idle.push(socket.connect(addr).await.unwrap());
        }
    }
    // Another address is answered by both at once.
    assert_eq!(get_from("127.0.0.2", ops, "/healthz").await, Some(200));
    assert_eq!(
        get_from("127.0.0.2", oidc, "/.well-known/openid-configuration").await,
        Some(200)
    );
    assert!(h.metric("ward_ca_connections_refused_total{reason=\"per_ip_limit\"}") >= 500.0);
    // And the idle ones that were admitted are closed at the first-request deadline (1 s).
    for conn in idle.iter_mut().step_by(25) {
        assert!(tcp_closed_within(conn, Duration::from_secs(5)).await);
    }
}
