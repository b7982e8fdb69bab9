//! ward-https: the one way ward makes an outbound HTTPS request.
//!
//! The sidecar talking to ward-ca, the CA fetching a Kubernetes JWKS (and, later, federated
//! bundles and OIDC documents) all need the same thing: connect, TLS, one HTTP/1.1 request, a
//! response body read up to a cap, all under one deadline, with errors that say which URL and
//! which step failed. What differs is how the server is authenticated, so the caller picks a
//! [`ServerAuth`]: a SPIFFE ID checked against a trust bundle (with or without presenting the
//! workload's own SVID), or the web PKI roots of a CA file. Session resumption is off: a
//! resumed session would authenticate with the identity of its first handshake. A host name
//! that resolves to several addresses (a headless Service of CA replicas) is tried address by
//! address until one answers with less than a 5xx.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use ward_identity::IdPattern;
use ward_tls::provider::{crypto_provider, PROTOCOL_VERSIONS};
use ward_tls::{BundleStore, CertResolver, SpiffeServerVerifier};

/// Why a request failed, naming the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpsError {
    /// The URL is not `https://host[:port]`.
    #[error("{0:?} is not an https:// URL with a host")]
    BadUrl(String),
    /// The TLS client could not be configured.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A CA file root is unusable.
    #[error("trust root: {0}")]
    Root(String),
    /// TCP connect failed.
    #[error("{url}: connect: {source}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (the server's certificate was refused, say).
    #[error("{url}: TLS: {detail}")]
    Tls {
        /// The URL requested.
        url: String,
        /// What the TLS layer said, ward's verifier words included.
        detail: String,
    },
    /// HTTP failed (the connection closed mid-answer, a malformed response).
    #[error("{url}: HTTP: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The request could not be built (a header value with forbidden bytes).
    #[error("{url}: request: {detail}")]
    Request {
        /// The URL requested.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The response body is larger than allowed.
    #[error("{url}: response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The URL requested.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// Nothing complete within the deadline.
    #[error("{url}: no complete answer within {after:?}")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The deadline.
        after: Duration,
    },
}

impl HttpsError {
    /// Whether another attempt (later, or at another address) may succeed: the server could
    /// not be reached or did not answer, as opposed to a refusal of its identity.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Timeout { .. } | Self::Http { .. }
        )
    }
}

/// How the server is authenticated.
#[derive(Clone, Debug)]
pub enum ServerAuth {
    /// By SPIFFE ID against the bundles in force at each handshake, optionally presenting
    /// this workload's SVID (mTLS).
    Spiffe {
        /// Trust bundles (followed as they change).
        bundles: BundleStore,
        /// IDs the server may prove.
        expected: Vec<IdPattern>,
        /// Our own SVID, for mTLS.
        identity: Option<Arc<CertResolver>>,
    },
    /// By the web PKI: a certificate for the URL's host name under one of these roots.
    Roots(Vec<CertificateDer<'static>>),
}

impl ServerAuth {
    /// The rustls client config that authenticates servers this way (also for TLS that is
    /// not HTTP, such as the CA's connections to PostgreSQL).
    pub fn client_config(&self) -> Result<ClientConfig, HttpsError> {
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(match self {
                // Between ward components: TLS 1.3 only.
                Self::Spiffe { .. } => PROTOCOL_VERSIONS,
                // Other servers (an API server): what rustls deems safe.
                Self::Roots(_) => rustls::DEFAULT_VERSIONS,
            })?;
        let mut config = match self {
            Self::Spiffe {
                bundles,
                expected,
                identity,
            } => {
                let verifier = SpiffeServerVerifier::new(bundles.clone(), expected.clone());
                let builder = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier));
                match identity {
                    Some(resolver) => builder.with_client_cert_resolver(resolver.clone()),
                    None => builder.with_no_client_auth(),
                }
            }
            Self::Roots(roots) => {
                let mut store = RootCertStore::empty();
                for root in roots {
                    store
                        .add(root.clone())
                        .map_err(|e| HttpsError::Root(e.to_string()))?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
        };
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

/// Bounds on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connect to last byte.
    pub timeout: Duration,
    /// Largest response body.
    pub max_body: usize,
}

/// One request.
#[derive(Clone, Debug)]
pub struct HttpsRequest<'a> {
    /// GET, POST...
    pub method: Method,
    /// `https://host[:port]`; its path is ignored in favour of `path`.
    pub url: &'a Uri,
    /// Path and query.
    pub path: &'a str,
    /// Extra headers (Host is set from the URL).
    pub headers: Vec<(HeaderName, String)>,
    /// The body (sent with Content-Length), if any.
    pub body: Option<Bytes>,
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct HttpsResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body (at most `Limits::max_body`).
    pub body: Bytes,
}

impl HttpsResponse {
    /// A header as text, if present and printable.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Checks that `text` is an `https://` URL with a host.
pub fn parse_https_url(text: &str) -> Result<Uri, HttpsError> {
    let uri: Uri = text
        .parse()
        .map_err(|_| HttpsError::BadUrl(text.to_owned()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(HttpsError::BadUrl(text.to_owned()));
    }
    Ok(uri)
}

/// Longest a TCP connect to one address may take before the next address is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a result should make a caller try another server: no answer at all (connect, TLS,
/// HTTP or timeout failure) or a 5xx answer. A 4xx is the server's verdict and stands.
pub fn worth_another_server(result: &Result<HttpsResponse, HttpsError>) -> bool {
    match result {
        Ok(resp) => resp.status.is_server_error(),
        Err(
            HttpsError::Connect { .. }
            | HttpsError::Tls { .. }
            | HttpsError::Http { .. }
            | HttpsError::Timeout { .. },
        ) => true,
        Err(_) => false,
    }
}

/// Sends `req`, authenticating the server per `auth`, within `limits` for each attempt. A
/// host name that resolves to several addresses is tried address by address, in the order
/// the resolver gives, while [`worth_another_server`] says so; the last result is returned.
pub async fn send(
    auth: &ServerAuth,
    req: HttpsRequest<'_>,
    limits: Limits,
) -> Result<HttpsResponse, HttpsError> {
    // What the request goes to, for messages: the URL's scheme and authority (its own path
    // is ignored in favour of `path`, so it must not be printed twice).
    let url = match (req.url.scheme_str(), req.url.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{}", req.path),
        _ => format!("{}{}", req.url.to_string().trim_end_matches('/'), req.path),
    };
    let host = req
        .url
        .host()
        .ok_or_else(|| HttpsError::BadUrl(url.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = req.url.port_u16().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| HttpsError::Connect {
            url: url.clone(),
            source,
        })?
        .collect();
    let mut last = Err(HttpsError::Connect {
        url: url.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    });
    for addr in addrs {
        let attempt = exchange(auth, req.clone(), &host, addr, &url, limits.max_body);
        last = match tokio::time::timeout(limits.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(HttpsError::Timeout {
                url: url.clone(),
                after: limits.timeout,
            }),
        };
        if !worth_another_server(&last) {
            break;
        }
    }
    last
}

async fn exchange(
    auth: &ServerAuth,
    req: HttpsRequest<'_>,
    host: &str,
    addr: SocketAddr,
    url: &str,
    max_body: usize,
) -> Result<HttpsResponse, HttpsError> {
    // Name the address tried when the URL names a host that may resolve to several.
    let named = host.parse::<std::net::IpAddr>().is_err();
    let connect_error = |source| HttpsError::Connect {
        url: if named {
            format!("{url} ({addr})")
        } else {
            url.to_owned()
        },
        source,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| connect_error(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_error)?;
    let host = host.to_owned();
    let _ = tcp.set_nodelay(true);
    let name =
        ServerName::try_from(host.clone()).map_err(|_| HttpsError::BadUrl(url.to_owned()))?;
    let tls = TlsConnector::from(Arc::new(auth.client_config()?))
        .connect(name, tcp)
        .await
        .map_err(|e| HttpsError::Tls {
            url: url.to_owned(),
            detail: match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => ward_tls::describe(tls),
                None => e.to_string(),
            },
        })?;
    let http = |source| HttpsError::Http {
        url: url.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(http)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = Request::builder()
        .method(req.method)
        .uri(req.path)
        .header(HOST, host);
    for (name, value) in req.headers {
        let value = HeaderValue::from_str(&value).map_err(|e| HttpsError::Request {
            url: url.to_owned(),
            detail: format!("header {name}: {e}"),
        })?;
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(req.body.unwrap_or_default()))
        .map_err(|e| HttpsError::Request {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
    let resp = sender.send_request(request).await.map_err(http)?;
    let (parts, body) = resp.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(HttpsError::BodyTooLarge {
                url: url.to_owned(),
                limit: max_body,
            })
        }
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(source) => return Err(http(*source)),
            Err(other) => {
                return Err(HttpsError::Request {
                    url: url.to_owned(),
                    detail: other.to_string(),
                })
            }
        },
    };
    Ok(HttpsResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests;
