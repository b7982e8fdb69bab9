//! OIDC discovery for JWT-SVIDs, on a listener of its own without client authentication:
//! `GET /.well-known/openid-configuration` and its `jwks_uri` (`<issuer>/keys`), what AWS IAM
//! OIDC providers, Google workload identity pools, Azure federated credentials and Vault's JWT
//! auth fetch. Plain HTTP/1.1, meant to sit behind an ingress that holds a public certificate
//! for the issuer's host. Only the JWT-SVID keys are listed (signing, next, previous), never a
//! root; `Cache-Control` lets relying parties keep them for one bundle refresh hint, so a key
//! published by `rotate prepare` reaches them before `activate` can sign with it (that waits
//! two hints). Anything else is a 404 or 405; at most [`MAX_CONNECTIONS`] connections at once,
//! each with a header deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

use super::CaService;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// A JSON response, cacheable by anyone for `cache` seconds when given (the discovery
/// listener and the federation bundle endpoint serve public documents).
pub(super) fn respond(
    status: StatusCode,
    body: impl Into<Bytes>,
    cache: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = cache {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("public, max-age={secs}")) {
            headers.insert(CACHE_CONTROL, v);
        }
    }
    resp
}

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

/// Serves discovery on `listener` until the task is aborted.
pub(super) async fn serve(listener: TcpListener, ca: Arc<CaService>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "OIDC listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ca = ca.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = answer(&req, &ca);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            // A connection lives at most a minute: discovery is two small GETs.
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
            drop(permit);
        });
    }
}
