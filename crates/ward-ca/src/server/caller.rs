//! Who is calling over mTLS, as the CA sees it: the presented SVID, checked per request
//! against the CA's record of it (issued and recorded, unexpired, unrevoked, same
//! fingerprint), and what only a sidecar's own SVID may do (renew, mint JWT-SVIDs: never an
//! app's certificate). Also the refusal of a replica that is behind the stored CA version.

use ward_api::ErrorCode;

use super::error::ApiError;
use super::http::{state_error, ConnInfo};
use super::CaService;
use crate::authority::records::CertRecord;
use crate::state::unix_now;

/// The verified client SVID of this connection: unexpired, unrevoked, and one the CA issued
/// and recorded (a leaf forged with a stolen issuer key chains fine, but matches no record).
pub(super) async fn client_svid(
    ca: &CaService,
    conn: &ConnInfo,
) -> Result<ward_identity::SvidLeaf, ApiError> {
    Ok(client_on_record(ca, conn).await?.0)
}

/// [`client_svid`] with the record the CA keeps of it.
async fn client_on_record(
    ca: &CaService,
    conn: &ConnInfo,
) -> Result<(ward_identity::SvidLeaf, CertRecord), ApiError> {
    let Some(svid) = conn.client.clone() else {
        return Err(ApiError::new(
            ErrorCode::ClientCertRequired,
            "this endpoint requires a client certificate (mTLS)",
        ));
    };
    // A keep-alive connection can outlive its certificate: check the validity period again.
    let now = unix_now();
    if now >= svid.not_after || now < svid.not_before {
        return Err(ApiError::new(
            ErrorCode::InvalidClientCert,
            format!(
                "client certificate {} is outside its validity period",
                svid.serial_hex
            ),
        ));
    }
    let (record, revoked) = ca
        .state
        .standing(&svid.serial_hex, svid.id.as_str(), svid.issued_at())
        .await
        .map_err(state_error)?;
    let fingerprint = conn.client_fingerprint.as_deref().unwrap_or_default();
    let Some(record) = record.filter(|r| r.describes(svid.id.as_str(), fingerprint)) else {
        return Err(ApiError::new(
            ErrorCode::UnknownCertificate,
            format!(
                "certificate {} for {} is not one this CA issued and recorded",
                svid.serial_hex, svid.id
            ),
        ));
    };
    if let Some(r) = revoked {
        return Err(ApiError::new(
            ErrorCode::Revoked,
            format!(
                "certificate {} for {} was revoked: {}",
                svid.serial_hex, svid.id, r.reason
            ),
        ));
    }
    Ok((svid, record))
}

/// A replica behind the CA version in the database signs nothing: its issuer may be retired.
pub(super) fn refuse_if_behind(ca: &CaService) -> Result<(), ApiError> {
    match ca.behind.why() {
        Some(why) => Err(ApiError::new(
            ErrorCode::IssuerUnavailable,
            format!("this CA replica is not signing: {why}"),
        )),
        None => Ok(()),
    }
}

/// The attestor recorded for certificates a sidecar obtained for its app.
pub(super) const APP_ATTESTOR: &str = "app";

/// [`client_svid`], for what only a sidecar's own SVID may do (renew, mint JWT-SVIDs): an app
/// certificate is refused, so a leaked app key is bounded to the one certificate it has.
pub(super) async fn workload_svid(
    ca: &CaService,
    conn: &ConnInfo,
) -> Result<ward_identity::SvidLeaf, ApiError> {
    let (svid, record) = client_on_record(ca, conn).await?;
    if record.attestor == APP_ATTESTOR {
        return Err(ApiError::new(
            ErrorCode::AppCertificate,
            format!(
                "certificate {} for {} was issued for an app through the Workload API: it can \
                 neither renew nor obtain JWT-SVIDs (the sidecar's own SVID does that)",
                svid.serial_hex, svid.id
            ),
        ));
    }
    Ok(svid)
}
