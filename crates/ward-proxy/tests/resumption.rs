//! TLS 1.3 session resumption in the proxy: an inbound listener resumes sessions and still
//! asks the policy on every connection; a sidecar pair resumes between the proxies until an
//! identity changes; `session_resumption: false` turns it off. (The session stores' own
//! checks are tested in the workspace `tests/` package, resumption.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use rustls::HandshakeKind::{Full, Resumed};
use support::*;
use tokio::net::TcpStream;

const RESUMED_IN: &str = "ward_tls_resumed_total{listener=\"api\",direction=\"inbound\"}";
const RESUMED_OUT: &str = "ward_tls_resumed_total{listener=\"backend\",direction=\"outbound\"}";

#[tokio::test]
async fn an_inbound_listener_resumes_and_asks_the_policy_every_time() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    try_echo(&client, api).await.unwrap();
    let mut second = connect(&client, api).await.unwrap();
    assert_eq!(second.get_ref().1.handshake_kind(), Some(Resumed));
    assert_eq!(round_trip(&mut second, b"again").await.unwrap(), b"again");
    drop(second);
    assert_eq!(metric(&proxy, RESUMED_IN), 1.0);
    let allowed =
        "ward_authz_decisions_total{listener=\"api\",decision=\"allow\",rule=\"web-to-api\"}";
    assert_eq!(
        metric(&proxy, allowed),
        2.0,
        "the resumed connection is decided too"
    );

    // The policy no longer admits the client: its ticket is not honoured, and the full
    // handshake that follows ends in access_denied before the app sees anything.
    pki.file("policy.yaml", "rules: []\n");
    proxy.reload();
    eventually("reload", || {
        metric(
            &proxy,
            "ward_reloads_total{kind=\"policy\",result=\"success\"}",
        ) == 1.0
    })
    .await;
    let accepted = app.accepted();
    let err = try_echo(&client, api).await.unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    assert_eq!(
        app.accepted(),
        accepted,
        "the app must not see the refused connection"
    );
    assert_eq!(metric(&proxy, RESUMED_IN), 1.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn session_resumption_false_makes_every_handshake_full() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "session_resumption: false\n").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    for _ in 0..3 {
        let mut conn = connect(&client, api).await.unwrap();
        assert_eq!(round_trip(&mut conn, b"x").await.unwrap(), b"x");
        assert_eq!(conn.get_ref().1.handshake_kind(), Some(Full));
    }
    assert_eq!(metric_or_zero(&proxy, RESUMED_IN), 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_sidecar_pair_resumes_until_an_identity_is_renewed() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let backend = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let frontend = frontend_proxy(&pki, addr_of(&backend.inbound, "api"), BACKEND).await;
    let through = || async {
        let mut plain = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
            .await
            .unwrap();
        assert_eq!(round_trip(&mut plain, b"pair").await.unwrap(), b"pair");
    };
    for _ in 0..3 {
        through().await;
    }
    eventually("two resumptions each side", || {
        metric(&frontend, RESUMED_OUT) == 2.0 && metric(&backend, RESUMED_IN) == 2.0
    })
    .await;

    // The backend renews its certificate: the next connection is a full handshake that
    // shows the new one, and resumption picks up again after it.
    pki.write("backend", &pki.ca.issue(BACKEND));
    backend.reload();
    eventually("renewal applied", || {
        metric(
            &backend,
            "ward_reloads_total{kind=\"identity\",result=\"success\"}",
        ) == 1.0
    })
    .await;
    through().await;
    assert_eq!(metric(&backend, RESUMED_IN), 2.0);
    through().await;
    eventually("resumed again", || metric(&backend, RESUMED_IN) == 3.0).await;
    assert_eq!(metric(&frontend, RESUMED_OUT), 3.0);
    frontend.shutdown().await;
    backend.shutdown().await;
}
