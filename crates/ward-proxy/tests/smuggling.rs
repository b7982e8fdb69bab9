//! Request smuggling attempts against an inbound HTTP listener. ward parses each request
//! itself and sends the app a request it re-encodes, never the client's bytes, so framing
//! cannot desynchronize between the sidecar and the app; what these tests hold is that
//! ambiguous framing (duplicate lengths, a Transfer-Encoding that does not end in chunked,
//! whitespace before the colon) is refused with 400 and never reaches the app, that
//! Content-Length with Transfer-Encoding is read by the latter and the connection closed, and
//! that no request hidden behind another reaches the app without passing the policy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An app that records "METHOD target body" for every request it receives.
async fn recording_app() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let log = log.clone();
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let line = format!("{} {}", req.method(), req.uri());
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let body = body.map(|b| String::from_utf8_lossy(&b).into_owned());
                    log.lock()
                        .unwrap()
                        .push(format!("{line} {}", body.unwrap_or_default()));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc),
            );
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_and_nothing_is_smuggled_to_the_app() {
    let pki = Pki::new();
    let (app, seen) = recording_app().await;
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file(
        "policy.yaml",
        "rules:\n  - name: orders\n    from: [\"spiffe://example.org/ns/web/*\"]\n    to: { listeners: [api], methods: [GET, POST], paths: [\"/v1/orders/*\"] }\n",
    );
    let text = format!(
        "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
         inbound:\n  - {{ name: api, protocol: http, listen: \"127.0.0.1:0\", forward: \"{app}\" }}\n\
         admin: \"127.0.0.1:0\"\n",
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
    let exchange = |bytes: &'static str| {
        let client = client.clone();
        async move {
            let mut tls = connect(&client, api).await.unwrap();
            tls.write_all(bytes.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
    };

    // Content-Length and Transfer-Encoding together (CL.TE / TE.CL): RFC 9112 §6.1 lets a
    // server follow Transfer-Encoding and then close; hyper does, so the body is the chunked
    // one (empty), the app gets a request re-encoded with that, and the bytes behind it are
    // never read as a request.
    let out = exchange("POST /v1/orders/1 HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "a second request was answered: {out}"
    );
    assert_eq!(*seen.lock().unwrap(), vec!["POST /v1/orders/1 ".to_owned()]);

    // Refused outright with 400, and nothing of them reaches the app.
    for attack in [
        // Two different lengths.
        "POST /v1/orders/1 HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ncontent-length: 40\r\n\r\nabcdGET /admin HTTP/1.1\r\nhost: a\r\n\r\n",
        // A transfer coding that does not end in chunked.
        "POST /v1/orders/1 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        // Whitespace between the field name and the colon.
        "POST /v1/orders/1 HTTP/1.1\r\nhost: a\r\ncontent-length : 4\r\n\r\nabcd",
    ] {
        let out = exchange(attack).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{attack:?} got: {out}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{attack:?} reached the app");
    }

    // Well-framed, with a request pipelined behind it: both are parsed as what they are,
    // and the second is decided by the policy like any other (denied: /admin).
    let pipelined = "POST /v1/orders/1 HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\n\r\nabcdGET /admin HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    let out = exchange(pipelined).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains("HTTP/1.1 403"),
        "the pipelined /admin must be refused: {out}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[1..],
        ["POST /v1/orders/1 abcd".to_owned()],
        "the app saw: {seen:?}"
    );
    assert!(seen.iter().all(|s| !s.contains("/admin")), "{seen:?}");
    proxy.shutdown().await;
}
