//! The SPIFFE bundle endpoint (SPIFFE Federation): `GET <path>` answers this trust domain's
//! SPIFFE bundle, the JWKS document with `spiffe_sequence` and `spiffe_refresh_hint` (X.509
//! roots as `use: x509-svid` with `x5c`, and the JWT-SVID keys as `use: jwt-svid` when the CA
//! issues JWT-SVIDs), `Content-Type: application/json`. The same document, sequence and keys
//! as the `spiffe_bundle` inside `/v1/bundle`, so the two never disagree.
//!
//! On a listener of its own, TLS 1.3 without client authentication: `https_spiffe` serves
//! with the CA's own SVID (renewed with it), `https_web` with the operator's certificate,
//! read at start. HTTP/1.1; anything but the path is 404, anything but GET/HEAD 405; connections
//! are limited as every public listener's ([`super::public`]).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::public::respond;
use super::CaService;
use crate::config::federation::BundleEndpoint;

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
    let service = ca.clone();
    super::public::serve(
        listener,
        Some(acceptor),
        "bundle endpoint",
        &service,
        move |req| answer(req, ca.clone(), path.clone()),
    )
    .await;
}
