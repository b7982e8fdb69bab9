//! OIDC discovery for JWT-SVIDs, on a listener of its own without client authentication:
//! `GET /.well-known/openid-configuration` and its `jwks_uri` (`<issuer>/keys`), what AWS IAM
//! OIDC providers, Google workload identity pools, Azure federated credentials and Vault's JWT
//! auth fetch. Plain HTTP/1.1, meant to sit behind an ingress that holds a public certificate
//! for the issuer's host, or HTTPS itself with `cert_file`/`key_file` (a lab, a host without
//! an ingress). Only the JWT-SVID keys are listed (signing, next, previous), never a
//! root; `Cache-Control` lets relying parties keep them for one bundle refresh hint, so a key
//! published by `rotate prepare` reaches them before `activate` can sign with it (that waits
//! two hints). Anything else is a 404 or 405; connections are limited as every public listener's
//! ([`super::public`]).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use super::public::respond;
use super::CaService;

/// The discovery document for `issuer`.
pub fn discovery(issuer: &str, algorithms: &[&str]) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "claims_supported": ["sub", "aud", "exp", "iat", "iss"],
    })
}

fn answer(req: &Request<Incoming>, ca: &CaService) -> Response<Full<Bytes>> {
    let Some(oidc) = &ca.config.oidc else {
        return respond(StatusCode::NOT_FOUND, "{}", None);
    };
    let hint = ca.config.bundle_refresh_hint.as_secs();
    let path = req.uri().path();
    let known = matches!(path, "/.well-known/openid-configuration" | "/keys");
    if known && req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "{}", None);
    }
    match path {
        "/.well-known/openid-configuration" => respond(
            StatusCode::OK,
            discovery(&oidc.issuer, &ca.authority().jwt_algorithms()).to_string(),
            Some(hint),
        ),
        "/keys" => {
            let keys: Vec<serde_json::Value> = ca
                .authority()
                .jwt_jwks()
                .into_iter()
                .map(|k| {
                    if k.kty == "RSA" {
                        json!({"kty": k.kty, "n": k.n, "e": k.e, "kid": k.kid, "use": "sig", "alg": "RS256"})
                    } else {
                        json!({"kty": k.kty, "crv": k.crv, "x": k.x, "y": k.y, "kid": k.kid, "use": "sig", "alg": "ES256"})
                    }
                })
                .collect();
            respond(
                StatusCode::OK,
                json!({"keys": keys}).to_string(),
                Some(hint),
            )
        }
        _ => respond(StatusCode::NOT_FOUND, "{}", None),
    }
}

/// The TLS of the listener when `oidc` has `cert_file` and `key_file` (read now, so a bad
/// file stops start-up).
pub(super) fn tls(
    oidc: &crate::authority::jwt_svid::OidcConfig,
) -> Result<Option<tokio_rustls::TlsAcceptor>, ward_tls::TlsError> {
    let Some((cert, key)) = &oidc.tls else {
        return Ok(None);
    };
    let chain = ward_tls::pem::load_certs(cert)?;
    let key = ward_tls::pem::load_private_key(key)?;
    let config = ward_tls::server_config_web(chain, key, &[b"http/1.1"])?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Serves discovery on `listener` (through `tls` when given) until the task is aborted.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ca: Arc<CaService>,
) {
    let service = ca.clone();
    super::public::serve(listener, tls, "OIDC listener", &service, move |req| {
        let resp = answer(&req, &ca);
        async move { resp }
    })
    .await;
}
