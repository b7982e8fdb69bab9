//! Clients nobody here wrote, against an inbound listener: curl and openssl s_client, allowed
//! and denied, plus TLS 1.2 refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.x app: answers every request with `hello` and closes.
async fn http_app() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

struct Setup {
    pki: Pki,
    proxy: ward_proxy::RunningProxy,
    port: u16,
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let app = http_app().await;
    let (cert, key) = pki.write(
        "backend",
        &pki.ca.issue_with_dns(BACKEND, &["localhost".into()]),
    );
    let proxy = ward_proxy::start(inbound_config(&pki, &cert, &key, app, ALLOW_FRONTEND, ""))
        .await
        .unwrap();
    let port = addr_of(&proxy.inbound, "api").port();
    pki.write("frontend", &pki.ca.issue(FRONTEND));
    pki.write("intruder", &pki.ca.issue(INTRUDER));
    Setup { pki, proxy, port }
}

fn curl(s: &Setup, who: &str) -> (i32, String, String) {
    let p = |f: &str| s.pki.path(f).to_str().unwrap().to_owned();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            s.pki.bundle().to_str().unwrap(),
        ])
        .args([
            "--cert",
            &p(&format!("{who}.pem")),
            "--key",
            &p(&format!("{who}.key")),
        ])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", s.port)])
        .arg(format!("https://localhost:{}/", s.port))
        .output()
        .expect("curl must be installed (make test installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s_client(s: &Setup, who: &str, extra: &[&str]) -> (String, String) {
    let p = |f: &str| s.pki.path(f).to_str().unwrap().to_owned();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", s.port),
            "-quiet",
            "-verify_return_error",
        ])
        .args(["-CAfile", s.pki.bundle().to_str().unwrap()])
        .args([
            "-cert",
            &p(&format!("{who}.pem")),
            "-cert_chain",
            &p(&format!("{who}.pem")),
        ])
        .args(["-key", &p(&format!("{who}.key"))])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (make test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_allowed_and_denied() {
    let s = setup().await;
    let (code, body, err) = curl(&s, "frontend");
    assert_eq!((code, body.as_str()), (0, "hello"), "{err}");
    let (code, _, err) = curl(&s, "intruder");
    assert_eq!(code, 56, "{err}");
    assert!(err.contains("access denied"), "{err}");
    s.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_allowed_denied_and_tls12_refused() {
    let s = setup().await;
    let (out, err) = s_client(&s, "frontend", &[]);
    assert!(
        out.contains("HTTP/1.1 200 OK") && out.ends_with("hello"),
        "{out}\n{err}"
    );
    let (out, err) = s_client(&s, "intruder", &[]);
    assert!(!out.contains("hello"), "{out}");
    assert!(err.contains("alert access denied"), "{err}");
    let (out, err) = s_client(&s, "frontend", &["-tls1_2"]);
    assert!(!out.contains("hello"));
    assert!(
        err.contains("protocol version") || err.contains("alert"),
        "{err}"
    );
    s.proxy.shutdown().await;
}
