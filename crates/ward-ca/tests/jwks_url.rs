//! The Kubernetes attestor fetching its keys from an HTTPS JWKS endpoint, as it would from the
//! API server's `/openid/v1/jwks`: a CA file to trust, a bearer token, and key rotation picked
//! up on demand when a token names a key the CA does not have yet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_e2e::jwt::{jwks, kube_claims, JwtSigner};
use ward_e2e::TestCa;

/// Serves `doc` at any path over HTTPS to requests bearing `Bearer secret`; 401 otherwise.
async fn jwks_server(api_ca: &TestCa, doc: Arc<Mutex<String>>) -> u16 {
    let m = api_ca.issue_with_dns("spiffe://api.test/kube-apiserver", &["localhost".into()]);
    let config = rustls::ServerConfig::builder_with_provider(ward_tls::provider::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(m.chain, m.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, doc) = (acceptor.clone(), doc.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let authorized = String::from_utf8_lossy(&req)
                    .to_ascii_lowercase()
                    .contains("authorization: bearer secret");
                let (status, body) = if authorized {
                    ("200 OK", doc.lock().unwrap().clone())
                } else {
                    ("401 Unauthorized", String::new())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A CA whose Kubernetes attestor fetches its keys from the server on `port`, trusting
/// `api_ca` and sending the bearer token `secret`.
async fn ca_fetching_from(api_ca: &TestCa, port: u16) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        api_ca.path().join("bundle.pem"),
        dir.path().join("api-ca.pem"),
    )
    .unwrap();
    std::fs::write(dir.path().join("sa-token"), "secret\n").unwrap();
    let source = format!("jwks_url: \"https://localhost:{port}/openid/v1/jwks\", jwks_ca_file: api-ca.pem, jwks_token_file: sa-token");
    Harness::start_with(&source, "", dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_an_https_jwks_and_rotation_is_picked_up() {
    let api_ca = TestCa::new("api.test");
    let first = JwtSigner::es256("a");
    let doc = Arc::new(Mutex::new(jwks(&[&first])));
    let port = jwks_server(&api_ca, doc.clone()).await;
    let h = ca_fetching_from(&api_ca, port).await;

    let token = first.sign(&kube_claims(ISSUER, AUDIENCE, "shop", "api", 600));
    let (resp, _) = h.enroll(&token).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    assert_eq!(
        resp.json()["spiffe_id"],
        "spiffe://example.org/ns/shop/sa/api"
    );

    // The API server rotates to a new key; the first token naming it triggers a fetch.
    let second = JwtSigner::rs256("b");
    *doc.lock().unwrap() = jwks(&[&second]);
    let token = second.sign(&kube_claims(ISSUER, AUDIENCE, "shop", "api", 600));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (resp, _) = h.enroll(&token).await;
        if resp.status == 200 {
            break;
        }
        refused(&resp, 401, "unknown_key");
        assert!(Instant::now() < deadline, "rotated key never fetched");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn jwks_url_config_is_checked() {
    let parse = |kube: &str| {
        let text = format!("trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:0\"\nstate: s.db\nattestors:\n  kubernetes: {{ issuer: x, audience: y, {kube} }}\n");
        ward_ca::config::CaConfig::parse("ca.yaml", &text, std::path::Path::new("/"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(parse("jwks_url: \"http://k8s/jwks\", jwks_ca_file: ca.pem")
        .unwrap_err()
        .contains("https://"));
    assert!(parse("jwks_url: \"https://k8s/jwks\"")
        .unwrap_err()
        .contains("jwks_ca_file"));
    assert!(
        parse("jwks_url: \"https://k8s/jwks\", jwks_file: j.json, jwks_ca_file: c")
            .unwrap_err()
            .contains("exactly one")
    );
    assert!(parse("jwks_url: \"https://k8s/jwks\", jwks_ca_file: c").is_ok());
    // A JWKS endpoint that refuses us stops the daemon from starting, with the reason.
    let api_ca = TestCa::new("api.test");
    let port = jwks_server(&api_ca, Arc::new(Mutex::new(String::new()))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        api_ca.path().join("bundle.pem"),
        dir.path().join("api-ca.pem"),
    )
    .unwrap();
    let ca = TestCa::new("example.org");
    let text = format!(
        "trust_domain: example.org\nca_dir: {}\nlisten: \"127.0.0.1:0\"\nstate: s.db\nattestors:\n  kubernetes: {{ issuer: x, audience: y, jwks_url: \"https://localhost:{port}/jwks\", jwks_ca_file: api-ca.pem }}\n",
        ca.path().display()
    );
    let cfg = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir.path()).unwrap();
    let err = ward_ca::server::start(cfg).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
}

/// Tasks alive on this runtime once the count stops moving (connection tasks ending).
async fn settled_tasks() -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut last = metrics.num_alive_tasks();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = metrics.num_alive_tasks();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_replaces_the_jwks_refresher_instead_of_adding_one() {
    let api_ca = TestCa::new("api.test");
    let first = JwtSigner::es256("a");
    let doc = Arc::new(Mutex::new(jwks(&[&first])));
    let port = jwks_server(&api_ca, doc.clone()).await;
    let h = ca_fetching_from(&api_ca, port).await;
    let config = h.dir.path().join("ca.yaml");
    h.running.reload(&config).await.unwrap();
    let before = settled_tasks().await;
    for _ in 0..10 {
        h.running.reload(&config).await.unwrap();
    }
    let after = settled_tasks().await;
    assert!(
        after <= before,
        "ten reloads left {} more tasks alive ({before} -> {after})",
        after.saturating_sub(before)
    );
    // The attestor in force still works.
    let token = first.sign(&kube_claims(ISSUER, AUDIENCE, "shop", "api", 600));
    let (resp, _) = h.enroll(&token).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
}
