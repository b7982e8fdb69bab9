//! An issuer retired by an issuer-only rotation (`rotate prepare`, `activate`, `finish`
//! without `--root`) is refused by CA-fed sidecars within one bundle refresh: inbound (a
//! client certificate forged with a copy of the old issuer key, and a genuine old one), on
//! resumption of a session made before, and outbound (an upstream presenting a forged
//! certificate). The sidecars themselves renew under the new issuer as soon as the bundle
//! names it, so traffic between them never stops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use rustls::HandshakeKind::{Full, Resumed};
use support::ca::*;
use support::*;
use tokio::net::TcpStream;

fn fast(c: ward_proxy::Config) -> ward_proxy::Config {
    ward_proxy::Config {
        reload_interval: Duration::from_millis(200),
        ..c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_issuer_is_refused_inbound_outbound_and_on_resumption() {
    let pki = Pki::new();
    let ca = start_ca(&pki.ca, "bundle_refresh_hint: 1s\n").await;
    let app = EchoApp::start().await;
    let stolen = pki.ca.steal_issuer();

    let backend = ward_proxy::start(fast(ca_config(
        &pki,
        "backend",
        &ca.url(),
        &ca.bundle(),
        &ca.token(BACKEND),
        &format!(
            "inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{}\" }}\n",
            app.addr
        ),
    )))
    .await
    .unwrap();
    let api = addr_of(&backend.inbound, "api");
    // An upstream presenting a BACKEND certificate forged with the (soon retired) issuer key.
    let (forged_upstream, _task) =
        echo_upstream(&pki, stolen.forge(&ward_e2e::leaf_params(BACKEND))).await;
    let frontend = ward_proxy::start(fast(ca_config(&pki, "frontend", &ca.url(), &ca.bundle(), &ca.token(FRONTEND),
        &format!("outbound:\n  - {{ name: backend, listen: \"127.0.0.1:0\", upstream: \"{api}\", server_id: \"{BACKEND}\" }}\n  - {{ name: forged, listen: \"127.0.0.1:0\", upstream: \"{forged_upstream}\", server_id: \"{BACKEND}\" }}\n")))).await.unwrap();
    let pair = addr_of(&frontend.outbound, "backend");
    let forged_out = addr_of(&frontend.outbound, "forged");

    // Before the rotation the stolen key works everywhere a chain to the root is enough.
    let genuine = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let forged = pki.client(stolen.forge(&ward_e2e::leaf_params(FRONTEND)), BACKEND);
    let mut first = connect(&genuine, api).await.unwrap();
    assert_eq!(round_trip(&mut first, b"full").await.unwrap(), b"full");
    assert_eq!(first.get_ref().1.handshake_kind(), Some(Full));
    drop(first);
    try_echo(&forged, api).await.unwrap();
    let mut s = TcpStream::connect(forged_out).await.unwrap();
    assert_eq!(round_trip(&mut s, b"forged").await.unwrap(), b"forged");
    drop(s);

    let renewals = |p: &ward_proxy::RunningProxy| {
        metric_or_zero(
            p,
            "ward_reloads_total{kind=\"identity\",result=\"success\"}",
        )
    };
    let before = [renewals(&backend), renewals(&frontend)];
    ca.cli(&["rotate", "prepare"]).unwrap();
    // Activation waits two bundle refreshes (2 s here) so sidecars know the next issuer.
    let early = ca.cli(&["rotate", "activate"]).unwrap_err();
    assert!(early.contains("wait"), "{early}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = ca.cli(&["rotate", "activate"]) {
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The sidecars see the new signing issuer in their next bundle fetch and renew at once.
    for (proxy, before) in [&backend, &frontend].into_iter().zip(before) {
        eventually("renewed under the new issuer", || renewals(proxy) > before).await;
    }
    let status = ca.cli(&["rotate", "status"]).unwrap();
    assert!(status.contains("nothing live depends"), "{status}");
    ca.cli(&["rotate", "finish"]).unwrap();

    // Within a bundle refresh the old issuer is refused: a resumption attempt of the session
    // made before falls back to a full handshake, which fails like the forged certificate.
    let refused = || {
        metric_or_zero(&backend, "ward_handshake_failures_total{listener=\"api\",direction=\"inbound\",reason=\"retired_issuer\"}")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while try_echo(&forged, api).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the retired issuer is still accepted inbound"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = refused();
    assert!(before >= 1.0);
    let err = try_echo(&genuine, api).await.unwrap_err();
    assert!(!err.is_empty());
    assert_eq!(
        refused(),
        before + 1.0,
        "the old session was resumed: {err}"
    );
    let accepted = app.accepted();
    // Each sidecar fetches the bundle on its own schedule: the frontend's may land up to one
    // refresh hint after the backend's.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut s = TcpStream::connect(forged_out).await.unwrap();
        if round_trip(&mut s, b"forged").await.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outbound still accepts the retired issuer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("outbound refusal counted", || {
        metric_or_zero(&frontend, "ward_handshake_failures_total{listener=\"forged\",direction=\"outbound\",reason=\"retired_issuer\"}") == 1.0
    })
    .await;

    // The pair itself, renewed under the new issuer, still talks (and may resume).
    let mut s = TcpStream::connect(pair).await.unwrap();
    assert_eq!(round_trip(&mut s, b"still").await.unwrap(), b"still");
    assert_eq!(
        app.accepted(),
        accepted + 1,
        "only the pair's connection reached the app"
    );
    let new_issuer = ward_ca::Issuer::load(&pki.ca.path()).unwrap();
    let fresh = pki.client(ward_e2e::issue_from(&new_issuer, FRONTEND, &[]), BACKEND);
    try_echo(&fresh, api).await.unwrap();
    let mut again = connect(&fresh, api).await.unwrap();
    assert_eq!(round_trip(&mut again, b"r").await.unwrap(), b"r");
    assert_eq!(again.get_ref().1.handshake_kind(), Some(Resumed));
    drop((s, again));
    frontend.shutdown().await;
    backend.shutdown().await;
    ca.running.shutdown().await;
}
