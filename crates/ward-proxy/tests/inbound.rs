//! Inbound behaviour with real sockets and real issued identities: who gets in, who does not,
//! and what the app and the metrics see.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;
use ward_e2e::leaf_params;

#[tokio::test]
async fn allowed_identity_round_trips_bytes_to_the_app() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut tls = connect(&client, api).await.unwrap();
    assert_eq!(round_trip(&mut tls, b"hello").await.unwrap(), b"hello");
    // A larger payload crosses several TLS records both ways.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut tls, &big).await.unwrap(), big);
    drop(tls);
    eventually("allow decision and bytes counted", || {
        metric(
            &proxy,
            "ward_authz_decisions_total{listener=\"api\",decision=\"allow\",rule=\"web-to-api\"}",
        ) == 1.0
            && metric(
                &proxy,
                "ward_bytes_total{listener=\"api\",direction=\"inbound\",flow=\"in\"}",
            ) >= 300_005.0
    })
    .await;
    assert_eq!(app.accepted(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn identity_without_a_rule_is_refused_and_the_app_sees_nothing() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(INTRUDER), BACKEND);
    let err = try_echo(&client, api).await.unwrap_err();
    assert!(
        err.contains("AccessDenied"),
        "expected an access_denied alert, got: {err}"
    );
    eventually("default-deny counted", || {
        metric(
            &proxy,
            "ward_authz_decisions_total{listener=\"api\",decision=\"deny\",rule=\"default-deny\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(app.accepted(), 0, "a denied peer must not reach the app");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_deny_rule_beats_an_allow_rule() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let policy = format!(
        "{ALLOW_FRONTEND}  - name: no-frontend\n    action: deny\n    from: [\"{FRONTEND}\"]\n"
    );
    let proxy = backend_proxy(&pki, &app, &policy, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let err = try_echo(&pki.client(pki.ca.issue(FRONTEND), BACKEND), api)
        .await
        .unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    // Another ID under ns/web is still allowed by the allow rule.
    try_echo(
        &pki.client(
            pki.ca.issue("spiffe://example.org/ns/web/sa/other"),
            BACKEND,
        ),
        api,
    )
    .await
    .unwrap();
    eventually("deny by rule counted", || {
        metric(
            &proxy,
            "ward_authz_decisions_total{listener=\"api\",decision=\"deny\",rule=\"no-frontend\"}",
        ) == 1.0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn audit_mode_allows_but_counts_the_would_deny() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let policy = format!("mode: audit\n{ALLOW_FRONTEND}");
    let proxy = backend_proxy(&pki, &app, &policy, "").await;
    let api = addr_of(&proxy.inbound, "api");
    try_echo(&pki.client(pki.ca.issue(INTRUDER), BACKEND), api)
        .await
        .unwrap();
    eventually("audit-deny counted", || {
        metric(&proxy, "ward_authz_decisions_total{listener=\"api\",decision=\"audit-deny\",rule=\"default-deny\"}") == 1.0
    })
    .await;
    assert_eq!(app.accepted(), 1);
    proxy.shutdown().await;
}

/// Certificates that must never get in, each counted under its reason.
#[tokio::test]
async fn bad_client_certificates_are_refused_by_reason() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(
        &pki,
        &app,
        "rules:\n  - name: all\n    from: [\"spiffe://example.org/*\"]\n",
        "",
    )
    .await;
    let api = addr_of(&proxy.inbound, "api");

    // No client certificate at all.
    let no_cert =
        rustls::ClientConfig::builder_with_provider(ward_tls::provider::crypto_provider())
            .with_protocol_versions(ward_tls::provider::PROTOCOL_VERSIONS)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(
                ward_tls::SpiffeServerVerifier::new(
                    pki.ca.bundles(),
                    vec![BACKEND.parse().unwrap()],
                ),
            ))
            .with_no_client_auth();
    let no_cert = tokio_rustls::TlsConnector::from(std::sync::Arc::new(no_cert));
    assert!(try_echo(&no_cert, api).await.is_err());

    let rogue = ward_e2e::TestCa::new("example.org");
    assert!(try_echo(&pki.client(rogue.issue(FRONTEND), BACKEND), api)
        .await
        .is_err());

    let mut expired = leaf_params(FRONTEND);
    expired.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
    expired.not_after = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    assert!(try_echo(&pki.client(pki.ca.forge(&expired), BACKEND), api)
        .await
        .is_err());

    let other = ward_e2e::TestCa::new("other.org");
    assert!(try_echo(
        &pki.client(
            other.issue("spiffe://other.org/ns/web/sa/frontend"),
            BACKEND
        ),
        api
    )
    .await
    .is_err());

    for reason in [
        "no_client_certificate",
        "unknown_issuer",
        "expired",
        "unknown_trust_domain",
    ] {
        eventually(reason, || {
            metric(&proxy, &format!("ward_handshake_failures_total{{listener=\"api\",direction=\"inbound\",reason=\"{reason}\"}}")) == 1.0
        })
        .await;
    }
    assert_eq!(app.accepted(), 0);
    // The proxy still serves a good client afterwards.
    try_echo(&pki.client(pki.ca.issue(FRONTEND), BACKEND), api)
        .await
        .unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn app_down_closes_cleanly_and_is_counted() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let down = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let proxy = ward_proxy::start(inbound_config(&pki, &cert, &key, down, ALLOW_FRONTEND, ""))
        .await
        .unwrap();
    let mut tls = connect(
        &pki.client(pki.ca.issue(FRONTEND), BACKEND),
        addr_of(&proxy.inbound, "api"),
    )
    .await
    .unwrap();
    assert!(closed_within(&mut tls, Duration::from_secs(5)).await);
    eventually("app_unavailable counted", || {
        metric(&proxy, "ward_connections_closed_total{listener=\"api\",direction=\"inbound\",reason=\"app_unavailable\"}") == 1.0
    })
    .await;
    drop(app);
    proxy.shutdown().await;
}

/// A policy reload that lands after the handshake admitted a TCP peer but before the relay
/// started (the app was slow to accept) still applies to that connection: it is closed as
/// `policy_revoked` and never relays a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_while_the_app_is_slow_to_accept_still_applies() {
    let pki = Pki::new();
    // An app whose accept queue is full: the sidecar's connect waits for a SYN retransmit
    // (about a second) until the test starts accepting.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let app_addr = listener.local_addr().unwrap();
    let filler = tokio::net::TcpStream::connect(app_addr).await.unwrap();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let proxy = ward_proxy::start(inbound_config(
        &pki,
        &cert,
        &key,
        app_addr,
        ALLOW_FRONTEND,
        "",
    ))
    .await
    .unwrap();
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut tls = connect(&client, api).await.unwrap();
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );

    // The handshake admitted the peer; now the policy stops allowing it.
    pki.file("policy.yaml", "rules: []\n");
    proxy.reload();
    eventually("reload", || {
        metric_or_zero(
            &proxy,
            "ward_reloads_total{kind=\"policy\",result=\"success\"}",
        ) == 1.0
    })
    .await;
    // The app starts accepting (and echoing) only now.
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    assert!(
        round_trip(&mut tls, b"after the reload").await.is_err(),
        "a connection the policy no longer allows was relayed"
    );
    eventually("closed as policy_revoked", || {
        metric_or_zero(&proxy, "ward_connections_closed_total{listener=\"api\",direction=\"inbound\",reason=\"policy_revoked\"}") == 1.0
    })
    .await;
    drop(filler);
    proxy.shutdown().await;
}
