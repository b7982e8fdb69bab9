//! A deliberately small HTTP/1.1 client over ward's TLS, for tests and benchmarks of the CA's
//! API: keep-alive, Content-Length bodies, optional client certificate. It speaks exactly what
//! the API documents and nothing clever, so a test using it checks the wire format too. And
//! [`answer`], the one-request HTTPS servers tests stand up (a bundle endpoint, an API server).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use ward_identity::IdPattern;
use ward_tls::provider::{crypto_provider, PROTOCOL_VERSIONS};
use ward_tls::{BundleStore, SpiffeServerVerifier};

use crate::Material;

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Connects to a server whose SVID matches `server_id`, presenting `client` if given.
pub fn connector(bundles: BundleStore, server_id: &str, client: Option<Material>) -> TlsConnector {
    let verifier = SpiffeServerVerifier::new(bundles, vec![IdPattern::parse(server_id).unwrap()]);
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match client {
        Some(m) => builder.with_client_auth_cert(m.chain, m.key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// Opens a TLS connection.
    pub async fn open(connector: &TlsConnector, addr: SocketAddr) -> std::io::Result<Self> {
        Self::open_from(connector, addr, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Opens a TLS connection from the local address `from` (another loopback address, for
    /// per-client-IP limits).
    pub async fn open_from(
        connector: &TlsConnector,
        addr: SocketAddr,
        from: std::net::IpAddr,
    ) -> std::io::Result<Self> {
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        Ok(Self {
            tls,
            buf: Vec::new(),
        })
    }

    /// Sends a request with `body` (as JSON) and reads the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.tls.write_all(head.as_bytes()).await?;
        self.tls.write_all(body).await?;
        self.tls.flush().await?;
        self.read_response().await
    }

    /// Whether the server closes the connection (EOF or error) within `limit`, reading and
    /// discarding whatever it sends before.
    pub async fn closed_within(&mut self, limit: std::time::Duration) -> bool {
        let wait = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Sends raw bytes (for malformed-request tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes).await?;
        self.tls.flush().await
    }

    /// Reads one response.
    pub async fn read_response(&mut self) -> std::io::Result<Response> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        let header_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = self.tls.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < header_end + len {
            let mut chunk = [0u8; 8192];
            let n = self.tls.read(&mut chunk).await?;
            if n == 0 {
                return Err(bad("body truncated"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[header_end..header_end + len].to_vec();
        self.buf.drain(..header_end + len);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Serves HTTPS on `listener` until the runtime ends: each connection's request head goes to
/// `respond`, whose status line (`200 OK`) and JSON body are sent back, then the connection is
/// closed.
pub fn answer(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    respond: impl Fn(&str) -> (&'static str, String) + Send + Sync + 'static,
) {
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, respond) = (acceptor.clone(), respond.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = respond(&String::from_utf8_lossy(&head));
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
}
