//! HTTP-mode test kit: an app that answers every request with what it received (method,
//! target, version, the headers that matter and every header name, as JSON), a sidecar with
//! an HTTP inbound listener in front of it (and one in front of a closed port), and curl
//! presenting a workload's certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use super::{addr_of, Pki, BACKEND, FRONTEND, INTRUDER};

/// An app that answers every request with what it received, as JSON, and counts the TCP
/// connections it accepted.
pub async fn mirror_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                let header = |n: &str| {
                    let all: Vec<_> = req
                        .headers()
                        .get_all(n)
                        .iter()
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .collect();
                    all.join(" | ")
                };
                let names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
                let body = serde_json::json!({
                    "method": req.method().as_str(),
                    "target": req.uri().to_string(),
                    "version": format!("{:?}", req.version()),
                    "host": header("host"),
                    "xfcc": header("x-forwarded-client-cert"),
                    "x_hop": header("x-hop"),
                    "xff": header("x-forwarded-for"),
                    "xfp": header("x-forwarded-proto"),
                    "header_names": names,
                });
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc),
            );
        }
    });
    (addr, accepted)
}

/// The policy of most HTTP tests.
pub const POLICY: &str = r#"rules:
  - name: frontend-reads-orders
    from: ["spiffe://example.org/ns/web/sa/frontend"]
    to: { listeners: [api, down], methods: [GET], paths: ["/v1/orders/*"] }
  - name: no-deletes
    action: deny
    from: ["spiffe://example.org/*"]
    to: { listeners: [api], methods: [DELETE] }
"#;

pub struct Setup {
    pub pki: Pki,
    pub proxy: ward_proxy::RunningProxy,
    pub port: u16,
    pub down: u16,
    pub accepted: Arc<AtomicUsize>,
    /// Holds the `down` listener's app port refused (`ward_e2e::kit::refused_port`).
    _closed: tokio::net::TcpSocket,
}

/// A sidecar for BACKEND with HTTP listeners `api` (before the mirror app) and `down`
/// (before a closed port), under [`POLICY`].
pub async fn setup() -> Setup {
    setup_with(POLICY, "").await
}

/// The same with another policy; `api_extra` is added to the `api` listener's YAML map.
pub async fn setup_with(policy: &str, api_extra: &str) -> Setup {
    let pki = Pki::new();
    let (app, accepted) = mirror_app().await;
    let (closed_socket, closed_port) = ward_e2e::kit::refused_port();
    let closed = format!("127.0.0.1:{closed_port}");
    let (cert, key) = pki.write(
        "backend",
        &pki.ca.issue_with_dns(BACKEND, &["localhost".into()]),
    );
    pki.write("frontend", &pki.ca.issue(FRONTEND));
    pki.write("intruder", &pki.ca.issue(INTRUDER));
    let policy = pki.file("policy.yaml", policy);
    let text = format!(
        "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\npolicy: {}\n\
         inbound:\n  - {{ name: api, protocol: http, listen: \"127.0.0.1:0\", forward: \"{app}\"{api_extra} }}\n  \
         - {{ name: down, protocol: http, listen: \"127.0.0.1:0\", forward: \"{closed}\" }}\n\
         admin: \"127.0.0.1:0\"\nlimits: {{ max_request_header_bytes: 16384 }}\n",
        cert.display(),
        key.display(),
        pki.bundle().display(),
        policy.display()
    );
    let config = ward_proxy::Config::load(&pki.file("proxy.yaml", &text))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let proxy = ward_proxy::start(config).await.unwrap();
    let port = addr_of(&proxy.inbound, "api").port();
    let down = addr_of(&proxy.inbound, "down").port();
    Setup {
        pki,
        proxy,
        port,
        down,
        accepted,
        _closed: closed_socket,
    }
}

/// curl as `who`: exit code, status, body.
pub fn curl(s: &Setup, who: &str, port: u16, extra: &[&str], path: &str) -> (i32, u16, String) {
    let p = |f: &str| s.pki.path(f).to_str().unwrap().to_owned();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--path-as-is",
            "-w",
            "\n%{http_code}",
        ])
        .args(["--cacert", s.pki.bundle().to_str().unwrap()])
        .args([
            "--cert",
            &p(&format!("{who}.pem")),
            "--key",
            &p(&format!("{who}.key")),
        ])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl must be installed (make test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let err = String::from_utf8_lossy(&out.stderr);
    let body = if body.is_empty() {
        err.into_owned()
    } else {
        body.to_owned()
    };
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body,
    )
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
