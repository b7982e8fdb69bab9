//! TLS 1.3 session resumption through ward-tls's session stores, over real loopback sockets:
//! sessions resume, and every check a full handshake makes still decides, because a session
//! that would no longer pass one is not resumed (the full handshake that follows refuses, or
//! succeeds with the current certificates).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::{ClientConfig, HandshakeKind, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use ward_e2e::{explain, leaf_params, store_with, Material, TestCa};
use ward_tls::{session, CertStore, Resumption, Revocation};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";

/// A server echoing four bytes per connection, each connection in its own session scope.
async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(session::scope(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).await.is_ok() {
                    let _ = tls.write_all(&buf).await;
                    let _ = tls.shutdown().await;
                }
            }));
        }
    });
    addr
}

/// One connection and one round trip (which also reads the server's ticket): how the
/// handshake went, or why it failed.
async fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> Result<HandshakeKind, String> {
    session::scope(async {
        let sock = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("backend.test").unwrap();
        let mut tls = TlsConnector::from(config.clone())
            .connect(name, sock)
            .await
            .map_err(explain)?;
        tls.write_all(b"ping").await.map_err(explain)?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(explain)?;
        assert_eq!(&buf, b"ping");
        // Between ward peers: AES-128-GCM with SHA-256 (hardware SHA in the key schedule).
        let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        Ok(tls.get_ref().1.handshake_kind().unwrap())
    })
    .await
}

fn configs(server: &CertStore, client: &CertStore) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let s =
        ward_tls::server_config(server, None, &[], Resumption::On, &Default::default()).unwrap();
    let c = ward_tls::client_config(
        client,
        vec![BACKEND.parse().unwrap()],
        &[],
        Resumption::On,
        &Default::default(),
    )
    .unwrap();
    (Arc::new(s), Arc::new(c))
}

fn republish(store: &CertStore, material: Material) {
    store.publish(material.chain, material.key).unwrap();
}

/// Publishes, in `store`'s bundles, a revocation list holding only `serial`.
fn revoke_serial(store: &CertStore, serial: &str) {
    let mut bundles = store.bundles().current().as_ref().clone();
    bundles.set_revocations(vec![Revocation {
        spiffe_id: None,
        serial: Some(serial.to_owned()),
        revoked_at: 1,
    }]);
    store.bundles().replace(bundles);
}

use HandshakeKind::{Full, Resumed};

#[tokio::test]
async fn sessions_resume_until_a_check_would_fail() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let (server_config, client_config) = configs(&server, &client);
    let addr = serve(server_config).await;
    let next = || connect(&client_config, addr);

    assert_eq!(next().await, Ok(Full));
    assert_eq!(next().await, Ok(Resumed));
    assert_eq!(next().await, Ok(Resumed));

    // The server renews: its sessions carry the old certificate, so none is resumed.
    republish(&server, ca.issue(BACKEND));
    assert_eq!(next().await, Ok(Full));
    assert_eq!(next().await, Ok(Resumed));

    // The client renews: it drops its tickets rather than go on as its old certificate.
    republish(&client, ca.issue(FRONTEND));
    assert_eq!(next().await, Ok(Full));
    assert_eq!(next().await, Ok(Resumed));

    // The server's roots change (another root added): sessions verified under the old roots
    // are not resumed. A revocation-list change alone keeps them.
    let other = TestCa::new("example.org");
    let mut bundles = server.bundles().current().as_ref().clone();
    let mut roots = bundles.roots(ca.issuer.trust_domain()).unwrap().to_vec();
    roots.push(other.issuer.root().clone());
    bundles
        .insert(ca.issuer.trust_domain().clone(), roots)
        .unwrap();
    server.bundles().replace(bundles);
    assert_eq!(next().await, Ok(Full));
    revoke_serial(&server, "0badc0de");
    assert_eq!(next().await, Ok(Resumed));

    // The client's certificate is revoked: the server does not resume, and the full
    // handshake refuses it.
    revoke_serial(&server, &client.current().unwrap().leaf().serial_hex);
    let err = next().await.unwrap_err();
    assert!(
        err.contains("revoked") || err.contains("CertificateRevoked"),
        "{err}"
    );
}

#[tokio::test]
async fn the_client_does_not_resume_with_a_revoked_server() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let (server_config, client_config) = configs(&server, &client);
    let addr = serve(server_config).await;
    assert_eq!(connect(&client_config, addr).await, Ok(Full));
    revoke_serial(&client, &server.current().unwrap().leaf().serial_hex);
    let err = connect(&client_config, addr).await.unwrap_err();
    assert!(err.contains("revoked"), "{err}");
}

/// A certificate valid for less than the margin is never resumed: not by the client (the
/// server's certificate), not by the server (the client's).
#[tokio::test]
async fn certificates_about_to_expire_are_not_resumed() {
    let ca = TestCa::new("example.org");
    let soon = |id: &str| {
        let mut params = leaf_params(id);
        params.not_after = time::OffsetDateTime::now_utc()
            + time::Duration::seconds(session::EXPIRY_MARGIN_SECS - 5);
        ca.forge(&params)
    };
    for (server_material, client_material) in [
        (soon(BACKEND), ca.issue(FRONTEND)),
        (ca.issue(BACKEND), soon(FRONTEND)),
    ] {
        let server = store_with(&ca, server_material);
        let client = store_with(&ca, client_material);
        let (server_config, client_config) = configs(&server, &client);
        let addr = serve(server_config).await;
        assert_eq!(connect(&client_config, addr).await, Ok(Full));
        assert_eq!(connect(&client_config, addr).await, Ok(Full));
    }
}

/// Outside a session scope nothing is recorded, so nothing is resumed.
#[tokio::test]
async fn without_a_scope_every_handshake_is_full() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let (server_config, client_config) = configs(&server, &client);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(server_config);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            if let Ok(mut tls) = acceptor.accept(sock).await {
                let mut buf = [0u8; 4];
                let _ = tls.read_exact(&mut buf).await;
                let _ = tls.write_all(&buf).await;
            }
        }
    });
    for _ in 0..3 {
        assert_eq!(connect(&client_config, addr).await, Ok(Full));
    }
}
