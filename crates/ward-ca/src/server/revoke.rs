//! `POST /v1/revoke` (mTLS, callers in `admins`): a revocation by ID or serial, validated
//! here for the API and the CLI alike, recorded, and published by every replica's next
//! `/v1/bundle`.

use hyper::body::Incoming;
use hyper::Request;
use ward_api::{ErrorCode, RevokeRequest};
use ward_identity::SpiffeId;

use super::caller::client_svid;
use super::error::ApiError;
use super::http::{json_response, read_body, state_error, ConnInfo, Resp};
use super::requests::parse_json;
use super::CaService;
use crate::authority::records::Revocation;
use crate::state::unix_now;

pub(super) async fn revoke(
    req: Request<Incoming>,
    ca: &CaService,
    conn: &ConnInfo,
) -> Result<Resp, ApiError> {
    let body = read_body(req, ca).await?;
    let caller = client_svid(ca, conn).await?;
    if !ca.settings.get().admins.contains(&caller.id) {
        return Err(ApiError::new(
            ErrorCode::NotAdmin,
            format!("{} is not in admins", caller.id),
        ));
    }
    let body: RevokeRequest = parse_json(&body)?;
    let revocation = revocation_from(
        body.spiffe_id,
        body.serial,
        body.reason,
        &ca.config.trust_domain,
    )?;
    ca.state
        .revoke(revocation.clone())
        .await
        .map_err(state_error)?;
    // An ID revocation covers what is issued up to its second: answer once that second is
    // over, so an enrollment the caller starts next is not covered.
    while unix_now() <= revocation.revoked_at {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::info!(target: "ward::audit", event = "revoked", by = %caller.id, spiffe_id = revocation.spiffe_id.as_deref().unwrap_or("-"), serial = revocation.serial.as_deref().unwrap_or("-"), reason = %revocation.reason, "revocation recorded");
    Ok(json_response(&ward_api::Revoked {
        revoked: revocation.entry(),
    }))
}

/// Validates a revocation request (shared by the API and the CLI).
pub fn revocation_from(
    spiffe_id: Option<String>,
    serial: Option<String>,
    reason: Option<String>,
    td: &ward_identity::TrustDomain,
) -> Result<Revocation, ApiError> {
    let reason = reason.unwrap_or_else(|| "unspecified".into());
    if reason.len() > 512 {
        return Err(ApiError::new(
            ErrorCode::InvalidReason,
            "reason is longer than 512 bytes",
        ));
    }
    let (spiffe_id, serial) = match (spiffe_id, serial) {
        (Some(id), None) => {
            let id = SpiffeId::parse(&id)
                .map_err(|e| ApiError::new(ErrorCode::InvalidId, format!("{id:?}: {e}")))?;
            if !id.is_member_of(td) || !id.is_workload() {
                return Err(ApiError::new(
                    ErrorCode::InvalidId,
                    format!("{id} is not a workload ID in {td}"),
                ));
            }
            (Some(id.to_string()), None)
        }
        (None, Some(s)) => {
            let s = s.trim_start_matches("0x").to_ascii_lowercase();
            if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::new(
                    ErrorCode::InvalidSerial,
                    format!("{s:?} is not a hex serial"),
                ));
            }
            (None, Some(s))
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRevocation,
                "give exactly one of spiffe_id or serial",
            ))
        }
    };
    Ok(Revocation {
        spiffe_id,
        serial,
        reason,
        revoked_at: unix_now(),
    })
}
