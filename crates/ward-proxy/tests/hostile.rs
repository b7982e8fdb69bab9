//! The hostile-certificate battery (ward_e2e::hostile) against a sidecar, both ways: every
//! client presenting one of them is refused by the inbound listener before the app sees a
//! connection, every upstream presenting one is refused by the outbound listener before an
//! app byte leaves, and each refusal is counted under its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use support::*;
use tokio::net::TcpStream;
use ward_e2e::hostile::battery;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_client_certificate_is_refused_by_reason() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let everyone = "rules:\n  - name: all\n    from: [\"spiffe://example.org/*\"]\n";
    let proxy = backend_proxy(&pki, &app, everyone, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let cases = battery(&pki.ca, FRONTEND);
    assert!(cases.len() >= 17);
    for case in cases {
        let before = case
            .reason
            .map(|r| handshake_failures(&proxy, "api", "inbound", r));
        let result = try_echo(&pki.client(case.material, BACKEND), api).await;
        assert!(result.is_err(), "{}: the sidecar let it in", case.name);
        if let (Some(reason), Some(before)) = (case.reason, before) {
            eventually(&format!("{}: counted as {reason}", case.name), || {
                handshake_failures(&proxy, "api", "inbound", reason) == before + 1.0
            })
            .await;
        }
    }
    assert_eq!(app.accepted(), 0, "no hostile client reached the app");
    // The control case: a real identity still gets through.
    try_echo(&pki.client(pki.ca.issue(FRONTEND), BACKEND), api)
        .await
        .unwrap();
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_server_certificate_is_refused_by_the_outbound_listener() {
    let pki = Pki::new();
    for case in battery(&pki.ca, BACKEND) {
        let (upstream, server) = echo_upstream(&pki, case.material).await;
        let frontend = frontend_proxy(&pki, upstream, "spiffe://example.org/*").await;
        let mut plain = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
            .await
            .unwrap();
        let echoed = round_trip(&mut plain, b"secret").await;
        assert!(
            echoed.is_err(),
            "{}: the app's bytes went through",
            case.name
        );
        let reason = case.reason.unwrap_or("");
        eventually(
            &format!("{}: refusal counted as {reason:?}", case.name),
            || {
                let text = frontend.metrics.encode();
                text.lines().any(|l| {
                    l.starts_with(
                        "ward_handshake_failures_total{listener=\"backend\",direction=\"outbound\"",
                    ) && l.contains(&format!("reason=\"{reason}"))
                })
            },
        )
        .await;
        frontend.shutdown().await;
        server.abort();
    }
}
