//! The SPIFFE bundle endpoint (SPIFFE Federation): `GET <path>` answers this trust domain's
//! SPIFFE bundle, the JWKS document with `spiffe_sequence` and `spiffe_refresh_hint` (X.509
//! roots as `use: x509-svid` with `x5c`, and the JWT-SVID keys as `use: jwt-svid` when the CA
//! issues JWT-SVIDs), `Content-Type: application/json`. The same document, sequence and keys
//! as the `spiffe_bundle` inside `/v1/bundle`, so the two never disagree.
//!
//! On a listener of its own, TLS 1.3 without client authentication: `https_spiffe` serves
//! with the CA's own SVID (renewed with it), `https_web` with the operator's certificate,
//! read at start. HTTP/1.1; anything but the path is 404, anything but GET/HEAD 405; at most
//! [`MAX_CONNECTIONS`] connections, each with a handshake and header deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::oidc::respond;
use super::CaService;
use crate::federation::BundleEndpoint;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// The TLS config the endpoint serves with, per its profile.
pub(super) fn tls(
    endpoint: &BundleEndpoint,
    ca: &CaService,
) -> Result<rustls::ServerConfig, ward_tls::TlsError> {
    let alpn: &[&[u8]] = &[b"http/1.1"];
    Ok(match &endpoint.web_cert {
        None => ward_tls::server_config_public(&ca.store, alpn)?,
        Some((cert, key)) => {
            let chain = ward_tls::pem::load_certs(cert).map_err(ward_tls::TlsError::from)?;
            let key = ward_tls::pem::load_private_key(key).map_err(ward_tls::TlsError::from)?;
            ward_tls::server_config_web(chain, key, alpn)?
        }
    })
}

async fn answer(
    req: Request<Incoming>,
    ca: Arc<CaService>,
    path: Arc<str>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != &*path {
        return respond(StatusCode::NOT_FOUND, Bytes::from_static(b"{}"), None);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"{}"),
            None,
        );
    }
    let hint = ca.config.bundle_refresh_hint;
    match ca
        .bundle
        .get(&ca.state, &ca.authority(), &ca.config, hint, &ca.foreign)
        .await
    {
        Ok(doc) => respond(StatusCode::OK, doc.spiffe, Some(hint.as_secs())),
        Err(e) => {
            tracing::error!(error = %e, "bundle endpoint: the bundle is unavailable");
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                Bytes::from_static(b"{}"),
                None,
            )
        }
    }
}

/// Serves the bundle on `listener` until the task is aborted.
pub(super) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ca: Arc<CaService>,
    path: String,
) {
    let path: Arc<str> = path.into();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "bundle endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (ca, path, acceptor) = (ca.clone(), path.clone(), acceptor.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            else {
                return;
            };
            let svc = service_fn(move |req: Request<Incoming>| {
                let (ca, path) = (ca.clone(), path.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(req, ca, path).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            // A fetch is one small GET; a connection lives at most a minute.
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
            drop(permit);
        });
    }
}
