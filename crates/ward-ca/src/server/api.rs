//! The HTTP API: routing, request parsing with limits, the `/v1` endpoints (`/v1/jwt` in
//! [`super::jwt`]) and health.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Method, Request, Response, StatusCode};
use time::OffsetDateTime;
use ward_api::ErrorCode;
use ward_identity::SpiffeId;

use super::caller::{refuse_if_behind, workload_svid, APP_ATTESTOR};
use super::error::ApiError;
use super::http::{json_response, read_body, state_error, text, Resp};
use super::metrics::{AttestorLabel, EndpointLabel, ReasonLabel};
use super::requests::{parse_json, EnrollRequest, RenewRequest};
use super::CaService;
use crate::authority::records::CertRecord;
use crate::authority::{csr, tokens};
use crate::server::attest::KubeError;
use crate::state::{unix_now, StateError};

pub use super::http::ConnInfo;
pub use super::revoke::revocation_from;

/// Serves one request; never panics on client input, never a 5xx for a client mistake.
pub async fn handle(req: Request<Incoming>, ca: &CaService, conn: &ConnInfo) -> Resp {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let (endpoint, result) = match (req.method().clone(), path.as_str()) {
        (Method::POST, "/v1/enroll") => ("/v1/enroll", enroll(req, ca, conn).await),
        (Method::POST, "/v1/renew") => ("/v1/renew", renew(req, ca, conn).await),
        (Method::POST, "/v1/revoke") => ("/v1/revoke", super::revoke::revoke(req, ca, conn).await),
        (Method::POST, "/v1/jwt") => ("/v1/jwt", super::jwt::issue(req, ca, conn).await),
        (Method::GET, "/v1/bundle") => ("/v1/bundle", bundle(&req, ca).await),
        (Method::GET, "/healthz") => ("/healthz", Ok(text(StatusCode::OK, "ok\n"))),
        (Method::GET, "/readyz") => ("/readyz", Ok(super::health::ready(ca).await)),
        (Method::GET, "/metrics") => ("/metrics", Ok(super::health::metrics(ca).await)),
        (
            _,
            "/v1/enroll" | "/v1/renew" | "/v1/revoke" | "/v1/jwt" | "/v1/bundle" | "/healthz"
            | "/readyz" | "/metrics",
        ) => (
            "other",
            read_body(req, ca).await.and(Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this path",
            ))),
        ),
        _ => (
            "other",
            read_body(req, ca)
                .await
                .and(Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))),
        ),
    };
    ca.metrics
        .latency
        .get_or_create(&EndpointLabel { endpoint })
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(resp) => resp,
        Err(e) => {
            ca.metrics
                .denials
                .get_or_create(&ReasonLabel {
                    reason: e.code.as_str(),
                })
                .inc();
            tracing::info!(target: "ward::audit", event = "refused", endpoint, code = e.code.as_str(), client = %conn.peer, message = %e.message, "request refused");
            e.response()
        }
    }
}

/// Signs and records a certificate, consuming `token_hash` in the same transaction. A
/// reserved ID (the CA's own, an admin's) is refused whatever vouched for it.
async fn issue_and_record(
    ca: &CaService,
    csr_pem: &str,
    id: &SpiffeId,
    attestor: &'static str,
    conn: &ConnInfo,
    token_hash: Option<String>,
    parent_serial: Option<String>,
) -> Result<Resp, ApiError> {
    let settings = ca.settings.get();
    if settings.is_reserved(&ca.config, id) {
        return Err(ApiError::new(ErrorCode::ReservedId,
            format!("{id} is reserved (the CA's own or an admin ID) and is never issued through the API"),
        ));
    }
    let der = csr::decode(csr_pem.as_bytes()).map_err(crate::CaError::from)?;
    refuse_if_behind(ca)?;
    let authority = ca.authority();
    let issued = authority.issuer.issue(
        &der,
        id,
        &[],
        settings.ttl.default,
        OffsetDateTime::now_utc(),
    )?;
    let record = CertRecord::issued(&issued, attestor, conn.peer.ip().to_string(), parent_serial);
    let result = ca.state.issue(record.clone(), token_hash).await;
    match result {
        Ok(()) => {}
        Err(StateError::TokenUnusable) => {
            return Err(ApiError::new(
                ErrorCode::TokenUsed,
                "join token was already used, revoked or expired",
            ))
        }
        Err(e) => return Err(state_error(e)),
    }
    ca.metrics
        .issuances
        .get_or_create(&AttestorLabel { attestor })
        .inc();
    tracing::info!(target: "ward::audit", event = "issued", attestor, spiffe_id = %id, serial = %record.serial, not_after = record.not_after, client = %conn.peer, "certificate issued");
    Ok(json_response(&ward_api::Issued {
        spiffe_id: id.to_string(),
        serial: record.serial,
        chain: issued.chain_pem(),
        bundle: authority.bundle_pem.clone(),
        issuers: authority.allowed_issuers(),
        not_after: record.not_after,
    }))
}

async fn enroll(req: Request<Incoming>, ca: &CaService, conn: &ConnInfo) -> Result<Resp, ApiError> {
    // The (bounded) body is read even when the answer is 429: refusing with it unread would
    // close a keep-alive connection, or reset it so the client loses the 429.
    let body = read_body(req, ca).await?;
    if !ca.limiter.allow(conn.peer.ip()) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many enrollments from this address; retry later",
        ));
    }
    let body: EnrollRequest = parse_json(&body)?;
    let now = unix_now();
    if tokens::looks_like_join_token(&body.token) {
        if !ca.settings.get().join_token {
            return Err(ApiError::new(
                ErrorCode::AttestorDisabled,
                "join tokens are not accepted by this CA",
            ));
        }
        let hash = tokens::hash(&body.token);
        let found = ca.state.token(&hash).await.map_err(state_error)?;
        let Some(token) = found else {
            return Err(ApiError::new(ErrorCode::InvalidToken, "unknown join token"));
        };
        if token.revoked_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::TokenRevoked,
                "join token was revoked",
            ));
        }
        if token.used_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::TokenUsed,
                "join token was already used",
            ));
        }
        if token.expires_at <= now {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                "join token has expired",
            ));
        }
        let id = SpiffeId::parse(&token.spiffe_id)
            .map_err(|e| ApiError::new(ErrorCode::InvalidId, e.to_string()))?;
        if !id.is_member_of(&ca.config.trust_domain) {
            return Err(ApiError::new(
                ErrorCode::WrongTrustDomain,
                format!(
                    "token is for {id}, outside trust domain {}",
                    ca.config.trust_domain
                ),
            ));
        }
        return issue_and_record(ca, &body.csr, &id, "join_token", conn, Some(hash), None).await;
    }
    if body.token.split('.').count() == 3 {
        let Some(kube) = ca.settings.get().kube.clone() else {
            return Err(ApiError::new(
                ErrorCode::AttestorDisabled,
                "Kubernetes tokens are not accepted by this CA",
            ));
        };
        let id = kube.attest(&body.token, now).map_err(|e| match e {
            KubeError::Token(t) => ApiError::from(t),
            KubeError::Id(e) => ApiError::new(ErrorCode::InvalidId, e.to_string()),
            KubeError::Jwks(e) => ApiError::new(ErrorCode::AttestorUnavailable, e.to_string()),
        })?;
        return issue_and_record(ca, &body.csr, &id, "kubernetes", conn, None, None).await;
    }
    Err(ApiError::new(
        ErrorCode::MalformedToken,
        "token is neither a ward join token nor a JWT",
    ))
}

async fn renew(req: Request<Incoming>, ca: &CaService, conn: &ConnInfo) -> Result<Resp, ApiError> {
    let body = read_body(req, ca).await?;
    let svid = workload_svid(ca, conn).await?;
    if !ca.renew_limiter.allow(svid.id.to_string()) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many renewals for {} (limits.renew_per_id_per_minute: {}); retry later",
                svid.id,
                ca.renew_limiter.rate()
            ),
        ));
    }
    if !ca.young_renewals.allow(
        &svid.serial_hex,
        svid.issued_at(),
        svid.not_after,
        unix_now(),
    ) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "certificate {} already renewed {} times in the first third of its life; it may renew again later",
                svid.serial_hex,
                super::ratelimit::YOUNG_RENEWALS
            ),
        ));
    }
    let body: RenewRequest = parse_json(&body)?;
    issue_and_record(
        ca,
        &body.csr,
        &svid.id,
        if body.for_app { APP_ATTESTOR } else { "renew" },
        conn,
        None,
        Some(svid.serial_hex),
    )
    .await
}

async fn bundle(req: &Request<Incoming>, ca: &CaService) -> Result<Resp, ApiError> {
    let hint = ca.config.bundle_refresh_hint;
    let doc = ca
        .bundle
        .get(&ca.state, &ca.authority(), &ca.config, hint, &ca.foreign)
        .await
        .map_err(state_error)?;
    let etag = hyper::header::HeaderValue::from_str(&doc.etag)
        .map_err(|_| ApiError::new(ErrorCode::BundleUnavailable, "bad etag"))?;
    if req.headers().get(IF_NONE_MATCH).is_some_and(|v| v == etag) {
        let mut resp = text(StatusCode::NOT_MODIFIED, Bytes::new());
        resp.headers_mut().insert(ETAG, etag);
        return Ok(resp);
    }
    let mut resp = Response::new(Full::new(doc.body));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(ETAG, etag);
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_str(&format!("max-age={}", hint.as_secs()))
            .unwrap_or(hyper::header::HeaderValue::from_static("no-cache")),
    );
    Ok(resp)
}
