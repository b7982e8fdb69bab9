//! `POST /v1/jwt`: a JWT-SVID for the caller's own SPIFFE ID, over mTLS with an SVID this CA
//! issued and recorded (the same standing check as `/v1/renew`: unexpired, unrevoked, on
//! record, and not an app's certificate). The ID comes from the verified certificate, never from the request.

use hyper::body::Incoming;
use hyper::Request;
use ward_api::{ErrorCode, JwtIssued, JwtRequest};

use super::caller::workload_svid;
use super::error::ApiError;
use super::http::{json_response, read_body, ConnInfo, Resp};
use super::metrics::AttestorLabel;
use super::requests::parse_json;
use super::CaService;
use crate::authority::jwt_svid;
use crate::state::unix_now;

/// Issues one JWT-SVID.
pub(super) async fn issue(
    req: Request<Incoming>,
    ca: &CaService,
    conn: &ConnInfo,
) -> Result<Resp, ApiError> {
    let body = read_body(req, ca).await?;
    let Some(cfg) = &ca.config.jwt_svid else {
        return Err(ApiError::new(
            ErrorCode::JwtSvidDisabled,
            "this CA does not issue JWT-SVIDs (no jwt_svid: in its config)",
        ));
    };
    let svid = workload_svid(ca, conn).await?;
    if !ca.jwt_limiter.allow(svid.id.to_string()) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "too many JWT-SVIDs for {} (limits.jwt_per_id_per_sec: {}); retry later",
                svid.id,
                ca.jwt_limiter.rate()
            ),
        ));
    }
    let request: JwtRequest = parse_json(&body)?;
    super::caller::refuse_if_behind(ca)?;
    let ttl = jwt_svid::check_request(cfg, &request.audience, request.ttl)?;
    let authority = ca.authority();
    let key = authority.jwt_signer().ok_or_else(|| {
        ApiError::new(
            ErrorCode::IssuerUnavailable,
            "the signing CA generation has no JWT-SVID key (it predates JWT-SVIDs); rotate the CA (`ward-ca rotate prepare`, then `activate`) to get one",
        )
    })?;
    let issuer = ca.config.oidc.as_ref().map(|o| o.issuer.as_str());
    let (token, expires_at) =
        jwt_svid::sign(key, &svid.id, &request.audience, ttl, issuer, unix_now())?;
    ca.metrics
        .issuances
        .get_or_create(&AttestorLabel { attestor: "jwt" })
        .inc();
    tracing::info!(target: "ward::audit", event = "jwt_issued", spiffe_id = %svid.id, audience = ?request.audience, kid = key.kid(), expires_at, client = %conn.peer, "JWT-SVID issued");
    Ok(json_response(&JwtIssued {
        token,
        spiffe_id: svid.id.to_string(),
        expires_at,
    }))
}
