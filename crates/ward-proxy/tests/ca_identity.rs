//! Sidecars that get their identity from a real ward-ca (in-process, real TLS): enrollment with
//! join tokens, traffic through a pair, renewal, a proxy that starts unready while the CA is
//! unreachable, and revocation that closes open connections and refuses new ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::ca::*;
use support::*;
use tokio::net::TcpStream;
use ward_e2e::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_enroll_renew_and_are_shut_out_by_revocation() {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, "").await;
    let url = format!("https://localhost:{}", ca.running.addr.port());
    let bundle = ca.bundle();
    let pki = Pki::new();
    let app = EchoApp::start().await;

    let backend = ward_proxy::start(ca_config(
        &pki,
        "backend",
        &url,
        &bundle,
        &ca.token(BACKEND),
        &format!(
            "inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{}\" }}\n",
            app.addr
        ),
    ))
    .await
    .unwrap();
    let api = addr_of(&backend.inbound, "api");
    let frontend = ward_proxy::start(ca_config(&pki, "frontend", &url, &bundle, &ca.token(FRONTEND),
        &format!("outbound:\n  - {{ name: backend, listen: \"127.0.0.1:0\", upstream: \"{api}\", server_id: \"{BACKEND}\" }}\n"))).await.unwrap();
    assert!(
        metric(&backend, "ward_identity_expiry_timestamp_seconds") > 0.0,
        "backend did not enroll"
    );
    assert!(
        metric(&frontend, "ward_identity_expiry_timestamp_seconds") > 0.0,
        "frontend did not enroll"
    );

    let local = addr_of(&frontend.outbound, "backend");
    let mut open = TcpStream::connect(local).await.unwrap();
    assert_eq!(
        round_trip(&mut open, b"enrolled").await.unwrap(),
        b"enrolled"
    );

    // Renewal (forced, as SIGHUP does) publishes a new certificate; the open connection stays.
    frontend.reload();
    eventually("frontend renewed", || {
        metric(
            &frontend,
            "ward_reloads_total{kind=\"identity\",result=\"success\"}",
        ) >= 1.0
    })
    .await;
    assert_eq!(round_trip(&mut open, b"renewed").await.unwrap(), b"renewed");
    let mut fresh = TcpStream::connect(local).await.unwrap();
    assert_eq!(
        round_trip(&mut fresh, b"new handshake").await.unwrap(),
        b"new handshake"
    );
    drop(fresh);

    // Revoking the frontend's ID: once the backend has refreshed its bundle, the open
    // connection is closed and new ones are refused.
    ca.revoke_id(FRONTEND);
    let mut closed = false;
    for _ in 0..40 {
        backend.reload(); // forces a bundle refresh (the CA caches its document for 1 s)
        if closed_within(&mut open, Duration::from_millis(250)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "revoked peer's connection stayed open");
    eventually("peer_revoked counted", || {
        metric(&backend, "ward_connections_closed_total{listener=\"api\",direction=\"inbound\",reason=\"peer_revoked\"}") == 1.0
    })
    .await;
    let mut again = TcpStream::connect(local).await.unwrap();
    assert!(
        round_trip(&mut again, b"nope").await.is_err(),
        "revoked peer got a new connection through"
    );
    eventually("revoked handshake counted", || {
        metric(&backend, "ward_handshake_failures_total{listener=\"api\",direction=\"inbound\",reason=\"revoked\"}") >= 1.0
    })
    .await;
    drop((open, again));
    frontend.shutdown().await;
    backend.shutdown().await;
    ca.running.shutdown().await;
}

#[tokio::test]
async fn a_proxy_starts_unready_while_the_ca_is_unreachable() {
    let ca_dir = TestCa::new("example.org");
    let pki = Pki::new();
    let (_reserved, closed) = ward_e2e::kit::refused_port();
    let config = ca_config(
        &pki,
        "lonely",
        &format!("https://localhost:{closed}"),
        &ca_dir.path().join("bundle.pem"),
        "wjt_x",
        "",
    );
    let proxy = ward_proxy::start(config).await.unwrap();
    let admin = proxy.admin;
    let mut conn = TcpStream::connect(admin).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"GET /ready HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut resp)
        .await
        .unwrap();
    assert!(
        resp.starts_with("HTTP/1.0 503") || resp.starts_with("HTTP/1.1 503"),
        "{resp}"
    );
    assert!(resp.contains("no identity yet"), "{resp}");
    proxy.shutdown().await;
}

/// Short-lived certificates (20 s) renewed repeatedly under continuous traffic through a
/// sidecar pair, with the CA stopped and restarted in the middle: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_renewals_and_a_ca_restart() {
    let ca = TestCa::new("example.org");
    let dir = tempfile::tempdir().unwrap();
    let config_text = |port: u16| {
        format!(
        "trust_domain: example.org\nca_dir: {}\nlisten: \"127.0.0.1:{port}\"\nstate: state.db\ndns_names: [localhost]\nttl: {{ default: 20s, min: 10s, max: 1h }}\n",
        ca.path().display()
    )
    };
    let start = |port: u16| {
        let config =
            ward_ca::config::CaConfig::parse("ca.yaml", &config_text(port), dir.path()).unwrap();
        ward_ca::server::start(config)
    };
    let running = start(0).await.unwrap();
    let port = running.addr.port();
    let token = |id: &str| insert_token(dir.path(), id);
    let url = format!("https://localhost:{port}");
    let bundle = ca.path().join("bundle.pem");
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let with_fast_reload = |c: ward_proxy::Config| ward_proxy::Config {
        reload_interval: Duration::from_millis(500),
        ..c
    };
    let backend = ward_proxy::start(with_fast_reload(ca_config(
        &pki,
        "backend",
        &url,
        &bundle,
        &token(BACKEND),
        &format!(
            "inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{}\" }}\n",
            app.addr
        ),
    )))
    .await
    .unwrap();
    let api = addr_of(&backend.inbound, "api");
    let frontend = ward_proxy::start(with_fast_reload(ca_config(&pki, "frontend", &url, &bundle, &token(FRONTEND),
        &format!("outbound:\n  - {{ name: backend, listen: \"127.0.0.1:0\", upstream: \"{api}\", server_id: \"{BACKEND}\" }}\n")))).await.unwrap();
    let local = addr_of(&frontend.outbound, "backend");

    // Continuous traffic: a new connection every 50 ms, and one long-lived connection.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut long = TcpStream::connect(local).await.unwrap();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let msg = format!("request {i}");
                let fresh = async {
                    let mut s = TcpStream::connect(local).await.map_err(|e| e.to_string())?;
                    round_trip(&mut s, msg.as_bytes())
                        .await
                        .map_err(|e| e.to_string())
                };
                match fresh.await {
                    Ok(got) if got == msg.as_bytes() => ok += 1,
                    other => failed.push(format!("{i}: {other:?}")),
                }
                if i.is_multiple_of(10) {
                    match round_trip(&mut long, b"long-lived").await {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(format!("long-lived at {i}: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, failed)
        })
    };

    wait_renewals(&frontend, 1.0).await;
    // Stop the CA for 3 s in the middle of the run; certificates stay valid meanwhile.
    running.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = start(port).await.unwrap();
    wait_renewals(&frontend, 3.0).await;
    wait_renewals(&backend, 3.0).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests: {failed:?}",
        failed.len()
    );
    assert!(ok > 100, "too little traffic to mean anything: {ok}");
    frontend.shutdown().await;
    backend.shutdown().await;
    running.shutdown().await;
}

fn renewals(p: &ward_proxy::RunningProxy) -> f64 {
    metric_or_zero(
        p,
        "ward_reloads_total{kind=\"identity\",result=\"success\"}",
    )
}

/// Waits (up to 60 s) until `p` has renewed at least `n` times.
async fn wait_renewals(p: &ward_proxy::RunningProxy, n: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while renewals(p) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "renewals stalled at {}",
            renewals(p)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
