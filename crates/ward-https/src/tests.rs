//! Against a real TLS server on loopback (ward's own verifier on both sides): a request goes
//! through with mTLS, and each bound holds: a body over the cap, a server that never answers,
//! a server proving the wrong SPIFFE ID, nothing listening.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use ward_e2e::{handshake_in_memory, raw_server_config, store_with, TestCa};

use super::*;

const SERVER: &str = "spiffe://example.org/ward/ca";
const CLIENT: &str = "spiffe://example.org/ns/web/sa/frontend";

async fn server(ca: &TestCa) -> SocketAddr {
    let config = raw_server_config(ca.bundles(), ca.issue(SERVER));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = match req.uri().path() {
                        "/big" => vec![b'x'; 2 * 1024 * 1024],
                        "/silent" => std::future::pending().await,
                        _ => b"hello".to_vec(),
                    };
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn auth(ca: &TestCa, expected: &str) -> ServerAuth {
    ServerAuth::Spiffe {
        bundles: ca.bundles(),
        expected: vec![IdPattern::parse(expected).unwrap()],
        identity: Some(store_with(ca, ca.issue(CLIENT)).resolver()),
    }
}

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(2),
    max_body: 1024 * 1024,
};

fn get<'a>(url: &'a Uri, path: &'a str) -> HttpsRequest<'a> {
    HttpsRequest {
        method: Method::GET,
        url,
        path,
        headers: vec![],
        body: None,
    }
}

#[tokio::test]
async fn a_request_and_each_bound() {
    let ca = TestCa::new("example.org");
    let addr = server(&ca).await;
    let url = parse_https_url(&format!("https://localhost:{}", addr.port())).unwrap();
    let ok = send(&auth(&ca, SERVER), get(&url, "/small"), LIMITS)
        .await
        .unwrap();
    assert_eq!((ok.status, &ok.body[..]), (StatusCode::OK, &b"hello"[..]));

    let err = send(&auth(&ca, SERVER), get(&url, "/big"), LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HttpsError::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err}"
    );

    let err = send(&auth(&ca, SERVER), get(&url, "/silent"), LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpsError::Timeout { .. }) && err.is_unreachable(),
        "{err}"
    );

    let err = send(
        &auth(&ca, "spiffe://example.org/other"),
        get(&url, "/small"),
        LIMITS,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, HttpsError::Tls { .. }) && !err.is_unreachable(),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("expected spiffe://example.org/other"),
        "{err}"
    );

    let (_reserved, port) = ward_e2e::kit::refused_port();
    let nowhere = parse_https_url(&format!("https://127.0.0.1:{port}")).unwrap();
    let err = send(&auth(&ca, SERVER), get(&nowhere, "/"), LIMITS)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpsError::Connect { .. }) && err.is_unreachable(),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("https://127.0.0.1:{port}/: connect")),
        "{err}"
    );

    // A URL with a path (a federation endpoint's) is named once, not with the path twice.
    let with_path = parse_https_url(&format!("https://127.0.0.1:{port}/bundle")).unwrap();
    let err = send(&auth(&ca, SERVER), get(&with_path, "/bundle"), LIMITS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("https://127.0.0.1:{port}/bundle: connect")),
        "{err}"
    );

    assert!(parse_https_url("http://x").is_err());
    assert!(parse_https_url("https:///path").is_err());
}

/// Runs a handshake in memory; returns the group each side negotiated and the server's kind.
fn groups(
    client: ClientConfig,
    server: rustls::ServerConfig,
) -> (
    rustls::NamedGroup,
    rustls::NamedGroup,
    rustls::HandshakeKind,
) {
    let (c, s) = handshake_in_memory(Arc::new(client), Arc::new(server), &mut Vec::new());
    let group = |g: Option<&'static dyn rustls::crypto::SupportedKxGroup>| g.unwrap().name();
    (
        group(c.negotiated_key_exchange_group()),
        group(s.negotiated_key_exchange_group()),
        s.handshake_kind().unwrap(),
    )
}

#[test]
fn ward_clients_and_the_ca_listeners_negotiate_the_hybrid_group_in_one_round_trip() {
    use rustls::{HandshakeKind::Full, NamedGroup::X25519MLKEM768};
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(SERVER));
    let client = store_with(&ca, ca.issue(CLIENT));
    let mtls = ServerAuth::Spiffe {
        bundles: ca.bundles(),
        expected: vec![IdPattern::parse(SERVER).unwrap()],
        identity: Some(client.resolver()),
    };
    let anonymous = ServerAuth::Spiffe {
        bundles: ca.bundles(),
        expected: vec![IdPattern::parse(SERVER).unwrap()],
        identity: None,
    };
    // The API listener (enrollment and renewal) and the bundle endpoint.
    let api = ward_tls::server_config_optional_client_auth(&server, &[]).unwrap();
    let public = ward_tls::server_config_public(&server, &[]).unwrap();
    for (auth, config) in [
        (&mtls, api.clone()),
        (&anonymous, api),
        (&anonymous, public),
    ] {
        let got = groups(auth.client_config().unwrap(), config);
        assert_eq!(got, (X25519MLKEM768, X25519MLKEM768, Full));
    }
}
