//! What changes while the proxy runs: policy and identity reloads, limits, timeouts, and the
//! outbound side (wrong upstream identity, and a sidecar pair end to end).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn policy_reload_flips_the_decision_and_closes_the_now_denied_connection() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut open = connect(&client, api).await.unwrap();
    assert_eq!(round_trip(&mut open, b"before").await.unwrap(), b"before");

    pki.file("policy.yaml", "rules: []\n");
    proxy.reload();
    assert!(
        closed_within(&mut open, Duration::from_secs(5)).await,
        "denied connection stayed open"
    );
    let fresh = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let err = try_echo(&fresh, api).await.unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    eventually("revocation counted", || {
        metric(&proxy, "ward_connections_closed_total{listener=\"api\",direction=\"inbound\",reason=\"policy_revoked\"}") == 1.0
            && metric(&proxy, "ward_reloads_total{kind=\"policy\",result=\"success\"}") == 1.0
    })
    .await;

    // And back: allowed again without a restart.
    pki.file("policy.yaml", ALLOW_FRONTEND);
    proxy.reload();
    eventually("second reload", || {
        metric(
            &proxy,
            "ward_reloads_total{kind=\"policy\",result=\"success\"}",
        ) == 2.0
    })
    .await;
    try_echo(&client, api).await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_broken_policy_keeps_the_old_one_and_counts_the_failure() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut open = connect(&client, api).await.unwrap();
    for broken in [
        "rules:\n  - name: x\n    from: [\"spiffe://Example.org/a\"]\n",
        "rules:\n  - name: x\n    from: [\"spiffe://example.org/a\"]\n    to: { listeners: [nope] }\n",
        "rules: [\n",
    ] {
        let before = metric_or_zero(&proxy, "ward_reloads_total{kind=\"policy\",result=\"failure\"}");
        pki.file("policy.yaml", broken);
        proxy.reload();
        eventually("failure counted", || {
            metric(&proxy, "ward_reloads_total{kind=\"policy\",result=\"failure\"}") == before + 1.0
        })
        .await;
        try_echo(&client, api).await.unwrap();
        assert_eq!(round_trip(&mut open, b"still").await.unwrap(), b"still");
    }
    drop(open);
    proxy.shutdown().await;
}

/// Kubernetes updates a ConfigMap by swapping a `..data` symlink to a new directory; the
/// policy file's own inode never changes. Polling by content hash sees it.
#[tokio::test]
async fn configmap_style_symlink_swap_is_picked_up_by_polling() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let root = pki.path("cm");
    std::fs::create_dir_all(root.join("v1")).unwrap();
    std::fs::create_dir_all(root.join("v2")).unwrap();
    std::fs::write(root.join("v1/policy.yaml"), ALLOW_FRONTEND).unwrap();
    std::fs::write(root.join("v2/policy.yaml"), "rules: []\n").unwrap();
    std::os::unix::fs::symlink("v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.yaml", root.join("policy.yaml")).unwrap();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let mut config = inbound_config(&pki, &cert, &key, app.addr, ALLOW_FRONTEND, "");
    config.policy = root.join("policy.yaml");
    config.reload_interval = Duration::from_millis(100);
    let proxy = ward_proxy::start(config).await.unwrap();
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    try_echo(&client, api).await.unwrap();
    std::os::unix::fs::symlink("v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    eventually("swap noticed", || {
        metric(
            &proxy,
            "ward_reloads_total{kind=\"policy\",result=\"success\"}",
        ) == 1.0
    })
    .await;
    assert!(try_echo(&client, api).await.is_err());
    proxy.shutdown().await;
}

#[tokio::test]
async fn identity_rotation_reaches_new_handshakes_without_dropping_open_ones() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut open = connect(&client, api).await.unwrap();
    let serial_of = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        ward_identity::SvidProfile::check(&der).unwrap().serial_hex
    };
    let old_serial = serial_of(&open);
    // Fresh clients, so each handshake is a full one that shows the server's current cert.
    let fresh = || pki.client(pki.ca.issue(FRONTEND), BACKEND);

    // A half-written rotation (new cert, old key) is refused and changes nothing.
    let renewed = pki.ca.issue(BACKEND);
    let good_key = std::fs::read(pki.path("backend.key")).unwrap();
    pki.write("backend", &renewed);
    std::fs::write(pki.path("backend.key"), &good_key).unwrap();
    proxy.reload();
    eventually("mismatch refused", || {
        metric(
            &proxy,
            "ward_reloads_total{kind=\"identity\",result=\"failure\"}",
        ) >= 1.0
    })
    .await;
    assert_eq!(
        serial_of(&connect(&fresh(), api).await.unwrap()),
        old_serial
    );

    pki.write("backend", &renewed);
    proxy.reload();
    eventually("rotation applied", || {
        metric(
            &proxy,
            "ward_reloads_total{kind=\"identity\",result=\"success\"}",
        ) == 1.0
    })
    .await;
    let renewed_conn = connect(&fresh(), api).await.unwrap();
    assert_ne!(serial_of(&renewed_conn), old_serial);
    assert_eq!(
        round_trip(&mut open, b"old conn alive").await.unwrap(),
        b"old conn alive"
    );
    drop((open, renewed_conn));
    proxy.shutdown().await;
}

#[tokio::test]
async fn max_connections_is_enforced_and_counted() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(
        &pki,
        &app,
        ALLOW_FRONTEND,
        "limits: { max_connections: 2 }\n",
    )
    .await;
    let api = addr_of(&proxy.inbound, "api");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut a = connect(&client, api).await.unwrap();
    let mut b = connect(&client, api).await.unwrap();
    round_trip(&mut a, b"a").await.unwrap();
    round_trip(&mut b, b"b").await.unwrap();
    let mut third = TcpStream::connect(api).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)).await,
        "third connection was not closed"
    );
    assert_eq!(
        metric(
            &proxy,
            "ward_connections_refused_total{listener=\"api\",direction=\"inbound\"}"
        ),
        1.0
    );
    drop(a);
    eventually("slot freed", || {
        metric(
            &proxy,
            "ward_connections_active{listener=\"api\",direction=\"inbound\"}",
        ) == 1.0
    })
    .await;
    try_echo(&client, api).await.unwrap();
    drop(b);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_cut_at_the_handshake_timeout() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(
        &pki,
        &app,
        ALLOW_FRONTEND,
        "limits: { handshake_timeout: 300ms }\n",
    )
    .await;
    let api = addr_of(&proxy.inbound, "api");
    let mut silent = TcpStream::connect(api).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    eventually("timeout counted", || {
        metric(&proxy, "ward_handshake_failures_total{listener=\"api\",direction=\"inbound\",reason=\"handshake_timeout\"}") == 1.0
            && metric(&proxy, "ward_connections_active{listener=\"api\",direction=\"inbound\"}") == 0.0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let proxy = backend_proxy(
        &pki,
        &app,
        ALLOW_FRONTEND,
        "limits: { idle_timeout: 300ms }\n",
    )
    .await;
    let mut tls = connect(
        &pki.client(pki.ca.issue(FRONTEND), BACKEND),
        addr_of(&proxy.inbound, "api"),
    )
    .await
    .unwrap();
    round_trip(&mut tls, b"x").await.unwrap();
    assert!(closed_within(&mut tls, Duration::from_secs(5)).await);
    eventually("idle counted", || {
        metric(&proxy, "ward_connections_closed_total{listener=\"api\",direction=\"inbound\",reason=\"idle_timeout\"}") == 1.0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_sidecar_pair_works_end_to_end() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let backend = backend_proxy(&pki, &app, ALLOW_FRONTEND, "").await;
    let frontend = frontend_proxy(&pki, addr_of(&backend.inbound, "api"), BACKEND).await;
    let mut plain = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
        .await
        .unwrap();
    assert_eq!(
        round_trip(&mut plain, b"through two sidecars")
            .await
            .unwrap(),
        b"through two sidecars"
    );
    // Half-close: the app finishes sending, still gets the reply, then sees EOF.
    plain.write_all(b"last").await.unwrap();
    plain.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut rest),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rest, b"last");
    eventually("backend saw frontend", || {
        metric(
            &backend,
            "ward_authz_decisions_total{listener=\"api\",decision=\"allow\",rule=\"web-to-api\"}",
        ) == 1.0
    })
    .await;
    frontend.shutdown().await;
    backend.shutdown().await;
}

/// The caller's sidecar tells a refusal by the peer's policy from a broken connection: its
/// own close reason is `peer_denied`, not `io_error`.
#[tokio::test]
async fn a_peer_policy_refusal_is_the_callers_peer_denied() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let backend = backend_proxy(&pki, &app, "rules: []\n", "").await;
    let frontend = frontend_proxy(&pki, addr_of(&backend.inbound, "api"), BACKEND).await;
    let mut plain = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
        .await
        .unwrap();
    assert!(round_trip(&mut plain, b"denied").await.is_err());
    eventually("the caller counted peer_denied", || {
        metric_or_zero(
            &frontend,
            "ward_connections_closed_total{listener=\"backend\",direction=\"outbound\",reason=\"peer_denied\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(
        metric_or_zero(
            &frontend,
            "ward_connections_closed_total{listener=\"backend\",direction=\"outbound\",reason=\"io_error\"}",
        ),
        0.0
    );
    frontend.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn outbound_refuses_an_upstream_with_the_wrong_identity() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    // The "backend" listener is really an impostor with a valid SVID for another ID.
    let (cert, key) = pki.write("impostor", &pki.ca.issue(INTRUDER));
    let impostor = ward_proxy::start(inbound_config(
        &pki,
        &cert,
        &key,
        app.addr,
        ALLOW_FRONTEND,
        "",
    ))
    .await
    .unwrap();
    let frontend = frontend_proxy(&pki, addr_of(&impostor.inbound, "api"), BACKEND).await;
    let mut plain = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
        .await
        .unwrap();
    plain.write_all(b"secret the app sent early").await.unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(5)).await);
    eventually("unexpected peer counted", || {
        metric(&frontend, "ward_handshake_failures_total{listener=\"backend\",direction=\"outbound\",reason=\"unexpected_peer\"}") == 1.0
    })
    .await;
    assert_eq!(
        app.accepted(),
        0,
        "no byte may reach anything behind the wrong upstream"
    );
    frontend.shutdown().await;
    impostor.shutdown().await;
}

/// A listener that cannot bind fails the start, and leaves nothing behind: the listeners
/// bound before it are closed again (no accept loop was spawned for them).
#[tokio::test]
async fn a_failed_bind_leaves_no_listener_behind() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inbound_addr = free.local_addr().unwrap();
    drop(free);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let mut config = inbound_config(&pki, &cert, &key, app.addr, ALLOW_FRONTEND, "");
    config.inbound[0].listen = inbound_addr;
    let mut out = config.inbound[0].clone();
    out.name = "second".into();
    out.listen = taken_addr;
    config.inbound.push(out);
    let err = ward_proxy::start(config).await.unwrap_err().to_string();
    assert!(
        err.contains("\"second\"") && err.contains(&taken_addr.to_string()),
        "{err}"
    );
    // The first listener is free again at once.
    std::net::TcpListener::bind(inbound_addr).expect("the earlier listener was left bound");
}
