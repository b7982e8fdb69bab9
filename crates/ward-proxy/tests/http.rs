//! HTTP mode: curl over HTTP/1.1 and HTTP/2 through an inbound listener, method and path
//! rules, path-normalization bypass attempts, the caller's identity in
//! `x-forwarded-client-cert` (a spoofed one stripped), 431 for oversized heads, 502 when the
//! app is down, and an outbound→inbound pair where many concurrent app requests share one
//! HTTP/2 mTLS connection per connection worker.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use support::http::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authorized_one_by_one_and_the_app_learns_who_called() {
    let s = setup().await;
    // The admin /policy shows each rule whole, methods and paths included.
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://{}/policy", s.proxy.admin)])
        .output()
        .unwrap();
    let policy = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(policy["rules"][0]["methods"], serde_json::json!(["GET"]));
    assert_eq!(
        policy["rules"][0]["paths"],
        serde_json::json!(["/v1/orders/*"])
    );
    assert_eq!(policy["rules"][1]["methods"], serde_json::json!(["DELETE"]));
    assert!(policy["rules"][1]["paths"].is_null(), "{policy}");
    let leaf = pki_leaf_sha256(&s.pki, "frontend.pem");
    for version in ["--http1.1", "--http2"] {
        let (code, status, body) = curl(
            &s,
            "frontend",
            s.port,
            &[
                version,
                "-H",
                "x-forwarded-client-cert: By=x;URI=spiffe://example.org/ns/ops/sa/admin",
                "-H",
                "connection: x-hop",
                "-H",
                "x-hop: 1",
            ],
            "/v1/orders/7?full=1",
        );
        assert_eq!((code, status), (0, 200), "{version}: {body}");
        let seen = json(&body);
        assert_eq!(seen["method"], "GET");
        assert_eq!(seen["target"], "/v1/orders/7?full=1");
        assert_eq!(seen["version"], "HTTP/1.1", "the app always gets HTTP/1.1");
        assert_eq!(seen["host"], format!("localhost:{}", s.port), "{version}");
        assert_eq!(
            seen["xfcc"],
            format!("By={BACKEND};Hash={leaf};URI={FRONTEND}"),
            "{version}: exactly one XFCC, written by the sidecar"
        );
        if version == "--http1.1" {
            // (HTTP/2 has no Connection header: curl sends x-hop as an ordinary header.)
            assert_eq!(
                seen["x_hop"], "",
                "headers named in Connection are hop-by-hop"
            );
        }
    }
    // Keep-alive pooling: all of that used few app connections.
    assert!(s.accepted.load(Ordering::SeqCst) <= 2);

    let refused = |method: &str, path: &str| curl(&s, "frontend", s.port, &["-X", method], path);
    let (_, status, body) = refused("DELETE", "/v1/orders/7");
    assert_eq!(status, 403, "{body}");
    assert_eq!(json(&body)["rule"], "no-deletes");
    assert_eq!(json(&body)["error"], "forbidden");
    let (_, status, body) = refused("POST", "/v1/orders/7");
    assert_eq!(
        (status, json(&body)["rule"].as_str()),
        (403, Some("default-deny"))
    );
    for sneaky in [
        "/v1/orders/../../admin",
        "/v1/orders/%2e%2e/%2E%2E/admin",
        "/v1/orders/..%2f..%2fadmin",
        "//admin",
        "/v1/orders/../x/../../etc",
    ] {
        let (_, status, body) = refused("GET", sneaky);
        assert!(status == 403 || status == 400, "{sneaky}: {status} {body}");
        assert!(
            !body.contains("\"target\""),
            "{sneaky} reached the app: {body}"
        );
    }
    let (_, status, body) = refused("GET", "/v1/x/../orders/%37");
    assert_eq!(status, 200, "normalizes into the rule: {body}");
    assert_eq!(
        json(&body)["target"],
        "/v1/orders/7",
        "the app gets the authorized path"
    );

    // No rule at all for intruder: refused in the handshake, as on TCP listeners.
    let (code, _, err) = curl(&s, "intruder", s.port, &[], "/v1/orders/7");
    assert_eq!(code, 56, "{err}");

    // Oversized head: 431 from the sidecar, nothing to the app.
    let big = format!("x-big: {}", "a".repeat(20_000));
    let (_, status, _) = curl(
        &s,
        "frontend",
        s.port,
        &["--http1.1", "-H", &big],
        "/v1/orders/7",
    );
    assert_eq!(status, 431);

    // App down: 502 with a JSON reason.
    let (_, status, body) = curl(&s, "frontend", s.down, &[], "/v1/orders/7");
    assert_eq!(status, 502, "{body}");
    assert_eq!(json(&body)["error"], "app_unavailable");

    let text = s.proxy.metrics.encode();
    assert!(text.contains("ward_http_requests_total{listener=\"api\",direction=\"inbound\",decision=\"deny\",status=\"4xx\"}"), "{text}");
    assert!(text.contains("ward_http_requests_total{listener=\"down\",direction=\"inbound\",decision=\"allow\",status=\"5xx\"} 1\n"), "{text}");
    s.proxy.shutdown().await;
}

fn pki_leaf_sha256(pki: &Pki, file: &str) -> String {
    let chain = ward_tls::pem::load_certs(&pki.path(file)).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &chain[0])
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_http_listener_multiplexes_app_requests_over_one_connection_per_worker() {
    let s = setup().await;
    let client = outbound_client(&s, "frontend").await;
    let local = addr_of(&client.outbound, "orders");
    // 20 concurrent requests, each on its own plain connection from the app.
    let mut tasks = Vec::new();
    for i in 0..20 {
        tasks.push(tokio::spawn(async move {
            let mut sock = tokio::net::TcpStream::connect(local).await.unwrap();
            let req =
                format!("GET /v1/orders/{i} HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n");
            sock.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            sock.read_to_string(&mut out).await.unwrap();
            out
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains(&format!("/v1/orders/{i}")), "{out}");
        assert!(out.contains(&format!("URI={FRONTEND}")), "{out}");
        assert!(
            out.contains("\"host\":\"orders\""),
            "the app's Host arrives: {out}"
        );
    }
    let handshakes = metric(
        &s.proxy,
        "ward_connections_opened_total{listener=\"api\",direction=\"inbound\"}",
    );
    // The 20 app connections are dealt to the 2 workers in turn; each worker's requests
    // share that worker's one connection.
    assert_eq!(
        handshakes, 2.0,
        "20 requests on 2 workers must share one HTTP/2 mTLS connection per worker"
    );

    // A request the backend's policy refuses comes back as the backend's 403.
    let mut sock = tokio::net::TcpStream::connect(local).await.unwrap();
    sock.write_all(b"DELETE /v1/orders/1 HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("no-deletes"),
        "{out}"
    );
    client.shutdown().await;
    s.proxy.shutdown().await;
}

/// A sidecar with identity `who` (a file `setup` wrote) and an outbound HTTP listener
/// `orders` to the backend's `api`, on 2 workers.
async fn outbound_client(s: &Setup, who: &str) -> ward_proxy::RunningProxy {
    let (cert, key) = (
        s.pki.path(&format!("{who}.pem")),
        s.pki.path(&format!("{who}.key")),
    );
    let policy = s.pki.file(&format!("{who}-policy.yaml"), "rules: []\n");
    let text = format!(
        "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
         outbound:\n  - {{ name: orders, protocol: http, listen: \"127.0.0.1:0\", upstream: \"127.0.0.1:{}\", server_id: \"{BACKEND}\" }}\n\
         admin: \"127.0.0.1:0\"\nworkers: 2\n",
        cert.display(),
        key.display(),
        s.pki.bundle().display(),
        policy.display(),
        s.port
    );
    let config = ward_proxy::Config::load(&s.pki.file(&format!("{who}.yaml"), &text)).unwrap();
    ward_proxy::start(config).await.unwrap()
}

/// A caller whose ID no rule of the backend's listener names is refused at the handshake
/// (the backend's `access_denied` alert). The app behind the caller's outbound listener is
/// told exactly that, as a 403 `peer_denied` naming the upstream and this sidecar's ID, not
/// a 502 "client error" that reads like a broken network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_refused_by_the_peers_policy_gets_403_peer_denied() {
    let s = setup().await;
    let client = outbound_client(&s, "intruder").await;
    let local = addr_of(&client.outbound, "orders");
    let mut sock = tokio::net::TcpStream::connect(local).await.unwrap();
    sock.write_all(b"GET /v1/orders/1 HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 403")
            && out.contains("\"error\":\"peer_denied\"")
            && out.contains(INTRUDER)
            && out.contains(&format!("127.0.0.1:{}", s.port)),
        "{out}"
    );
    assert_eq!(
        s.accepted.load(Ordering::SeqCst),
        0,
        "the app saw the intruder"
    );
    client.shutdown().await;
    s.proxy.shutdown().await;
}

/// An app that accepts connections and never answers.
async fn silent_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_large_bodies_refused_and_slow_apps_time_out() {
    let pki = Pki::new();
    let (app, _) = mirror_app().await;
    let slow = silent_app().await;
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file(
        "policy.yaml",
        "rules:\n  - name: all\n    from: [\"spiffe://example.org/*\"]\n",
    );
    let text = format!(
        "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
         inbound:\n  - {{ name: api, protocol: http, listen: \"127.0.0.1:0\", forward: \"{app}\" }}\n  \
         - {{ name: slow, protocol: http, listen: \"127.0.0.1:0\", forward: \"{slow}\" }}\n\
         admin: \"127.0.0.1:0\"\nlimits: {{ request_header_timeout: 1s, response_timeout: 1s, max_request_body_bytes: 1024 }}\n",
        cert.display(),
        key.display(),
        pki.bundle().display(),
        policy.display()
    );
    let proxy = ward_proxy::start(ward_proxy::Config::load(&pki.file("p.yaml", &text)).unwrap())
        .await
        .unwrap();
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let exchange = |addr: SocketAddr, bytes: Vec<u8>| {
        let client = client.clone();
        async move {
            let mut tls = connect(&client, addr).await.unwrap();
            tls.write_all(&bytes).await.unwrap();
            let mut out = Vec::new();
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut out))
                    .await;
            (read.is_ok(), String::from_utf8_lossy(&out).into_owned())
        }
    };

    // A head that never completes is cut after request_header_timeout.
    let started = std::time::Instant::now();
    let (closed, _) = exchange(api, b"GET /x HTTP/1.1\r\nhost: a\r\n".to_vec()).await;
    assert!(closed, "a slow head was not cut");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));

    // A declared body over the limit: 413 before anything reaches the app.
    let big = format!(
        "POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n{}",
        "b".repeat(5000)
    );
    let (_, out) = exchange(api, big.into_bytes()).await;
    assert!(
        out.starts_with("HTTP/1.1 413") && out.contains("body_too_large"),
        "{out}"
    );
    // A chunked body that turns out too long: also 413.
    let chunked = format!("POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n800\r\n{}\r\n800\r\n{}\r\n0\r\n\r\n", "c".repeat(2048), "c".repeat(2048));
    let (_, out) = exchange(api, chunked.into_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // Within the limit it goes through.
    let ok = format!(
        "POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{}",
        "d".repeat(1000)
    );
    let (_, out) = exchange(api, ok.into_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    // An app that never answers: 504 after response_timeout.
    let slow_addr = addr_of(&proxy.inbound, "slow");
    let (_, out) = exchange(
        slow_addr,
        b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 504") && out.contains("app_timeout"),
        "{out}"
    );
    proxy.shutdown().await;
}
