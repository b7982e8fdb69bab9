//! Shared helpers for ward-proxy's integration tests: a real CA and PEM files on disk, an echo
//! app that counts its connections, the proxy started in-process on port 0, TLS clients made
//! of real issued (or forged) identities, and deadline-bounded waiting.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)] // each test file uses a subset

pub mod ca;
pub mod http;
pub mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use ward_e2e::{raw_client_config, raw_server_config, Material, TestCa};
use ward_proxy::{Config, RunningProxy};
use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};
use ward_tls::pem::{certs_to_pem, encode_block};

pub const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
pub const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";
pub const INTRUDER: &str = "spiffe://example.org/ns/evil/sa/intruder";

/// A CA plus a directory for configs and PEM files.
pub struct Pki {
    pub ca: TestCa,
    pub dir: tempfile::TempDir,
}

/// Logs to the test output when WARD_TEST_LOG is set (e.g. WARD_TEST_LOG=debug).
pub fn logs() {
    if let Ok(level) = std::env::var("WARD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(level)
            .with_test_writer()
            .try_init();
    }
}

impl Pki {
    pub fn new() -> Self {
        logs();
        Self {
            ca: TestCa::new("example.org"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bundle(&self) -> PathBuf {
        self.ca.path().join("bundle.pem")
    }

    /// Writes `material` as `<name>.pem` (chain) and `<name>.key` (0600), atomically.
    pub fn write(&self, name: &str, material: &Material) -> (PathBuf, PathBuf) {
        let cert = self.path(&format!("{name}.pem"));
        let key = self.path(&format!("{name}.key"));
        write_atomic(
            &key,
            encode_block("PRIVATE KEY", material.key.secret_der()).as_bytes(),
            KEY_MODE,
        )
        .unwrap();
        write_atomic(&cert, certs_to_pem(&material.chain).as_bytes(), PUBLIC_MODE).unwrap();
        (cert, key)
    }

    /// A TLS client presenting `material` and expecting a server matching `expected`.
    pub fn client(&self, material: Material, expected: &str) -> TlsConnector {
        TlsConnector::from(Arc::new(raw_client_config(
            self.ca.bundles(),
            material,
            expected,
        )))
    }

    /// Writes a file next to the configs.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        write_atomic(&path, text.as_bytes(), PUBLIC_MODE).unwrap();
        path
    }
}

/// A TCP echo app on 127.0.0.1 that counts the connections it accepts.
pub struct EchoApp {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl EchoApp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = sock.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        Self { addr, accepted }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A proxy config with one inbound listener `api` forwarding to `forward`, serving the
/// identity in `cert`/`key`, with `policy` as its policy file; `extra` is appended verbatim.
pub fn inbound_config(
    pki: &Pki,
    cert: &Path,
    key: &Path,
    forward: SocketAddr,
    policy: &str,
    extra: &str,
) -> Config {
    inbound_config_with(pki, cert, key, forward, policy, "", extra)
}

/// The same, with `listener` appended inside the `api` listener's map (e.g.
/// `, protocol: http`).
pub fn inbound_config_with(
    pki: &Pki,
    cert: &Path,
    key: &Path,
    forward: SocketAddr,
    policy: &str,
    listener: &str,
    extra: &str,
) -> Config {
    let policy_path = pki.file("policy.yaml", policy);
    let text = format!(
        "trust_domain: example.org\n\
         identity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
         policy: {}\n\
         inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{forward}\"{listener} }}\n\
         admin: \"127.0.0.1:0\"\n\
         reload_interval: 1h\n{extra}",
        cert.display(),
        key.display(),
        pki.bundle().display(),
        policy_path.display(),
    );
    let path = pki.file("proxy.yaml", &text);
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The policy that lets frontend (and anything under ns/web) into `api`.
pub const ALLOW_FRONTEND: &str = "rules:\n  - name: web-to-api\n    from: [\"spiffe://example.org/ns/web/*\"]\n    to: { listeners: [api] }\n";

/// Starts an inbound proxy for BACKEND in front of `app`.
pub async fn backend_proxy(pki: &Pki, app: &EchoApp, policy: &str, extra: &str) -> RunningProxy {
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    ward_proxy::start(inbound_config(pki, &cert, &key, app.addr, policy, extra))
        .await
        .unwrap()
}

/// Outbound sidecar for FRONTEND, pointed at an inbound sidecar; `server_id` is what the
/// outbound side expects.
pub async fn frontend_proxy(pki: &Pki, upstream: SocketAddr, server_id: &str) -> RunningProxy {
    frontend_proxy_with(pki, upstream, server_id, "").await
}

/// The same, with `listener` appended inside the outbound listener's map (e.g.
/// `, protocol: http`).
pub async fn frontend_proxy_with(
    pki: &Pki,
    upstream: SocketAddr,
    server_id: &str,
    listener: &str,
) -> RunningProxy {
    let (cert, key) = pki.write("frontend", &pki.ca.issue(FRONTEND));
    let policy = pki.file("frontend-policy.yaml", "rules: []\n");
    let text = format!(
        "trust_domain: example.org\n\
         identity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
         policy: {}\n\
         outbound:\n  - {{ name: backend, listen: \"127.0.0.1:0\", upstream: \"{upstream}\", server_id: \"{server_id}\"{listener} }}\n\
         admin: \"127.0.0.1:0\"\n",
        cert.display(), key.display(), pki.bundle().display(), policy.display(),
    );
    let path = pki.file("frontend.yaml", &text);
    ward_proxy::start(Config::load(&path).unwrap())
        .await
        .unwrap()
}

/// A TLS upstream presenting `material` as is (verifying clients with ward's verifier) that
/// echoes, one connection at a time, all in one task: aborting the task kills the upstream
/// and its open connection together.
pub async fn echo_upstream(
    pki: &Pki,
    material: Material,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let config = raw_server_config(pki.ca.bundles(), material);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(sock).await else {
                continue;
            };
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = tls.read(&mut buf).await {
                if tls.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    (addr, task)
}

pub fn addr_of(list: &[(String, SocketAddr)], name: &str) -> SocketAddr {
    list.iter().find(|(n, _)| n == name).unwrap().1
}

/// Connects over TLS (the handshake may still be refused by the server on first read).
pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("backend.test").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// Writes `msg` and reads the same number of bytes back.
pub async fn round_trip<S>(stream: &mut S, msg: &[u8]) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(msg).await?;
    stream.flush().await?;
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    Ok(buf)
}

/// Connects with `connector`, round-trips a message, and returns the outcome.
pub async fn try_echo(connector: &TlsConnector, addr: SocketAddr) -> Result<(), String> {
    let mut tls = connect(connector, addr).await.map_err(|e| e.to_string())?;
    let got = round_trip(&mut tls, b"ping")
        .await
        .map_err(|e| e.to_string())?;
    if got == b"ping" {
        Ok(())
    } else {
        Err(format!("echo mismatch: {got:?}"))
    }
}

/// Resolves once the stream is closed by the other side (EOF or error), within `limit`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

pub use ward_e2e::kit::{eventually, free_port};

/// `ward_handshake_failures_total` for one listener, direction and reason.
pub fn handshake_failures(
    proxy: &RunningProxy,
    listener: &str,
    direction: &str,
    reason: &str,
) -> f64 {
    metric_or_zero(
        proxy,
        &format!("ward_handshake_failures_total{{listener=\"{listener}\",direction=\"{direction}\",reason=\"{reason}\"}}"),
    )
}

/// The value of the metric sample whose line starts with `prefix` (labels included). A
/// missing sample fails the test: a renamed metric or label must not read as zero.
pub fn metric(proxy: &RunningProxy, prefix: &str) -> f64 {
    ward_e2e::metrics::must(&proxy.metrics.encode(), prefix)
}

/// The same for a counter whose label set may not have been counted yet: zero then, but only
/// when the metric family itself is exported (so a renamed metric still fails).
pub fn metric_or_zero(proxy: &RunningProxy, prefix: &str) -> f64 {
    ward_e2e::metrics::sample_or_zero(&proxy.metrics.encode(), prefix)
}
