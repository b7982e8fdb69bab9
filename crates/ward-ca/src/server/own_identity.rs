//! The CA's own serving certificate (`spiffe://<td>/ward/ca`): issued under the signing
//! issuer and recorded like any other, at start, whenever the issuer changes, and again at
//! half its lifetime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use ward_identity::SpiffeId;

use super::metrics::AttestorLabel;
use super::{CaService, ServeError};
use crate::authority::error::CaError;
use crate::authority::records::CertRecord;
use crate::keys::db::DbCa;
use crate::state::unix_now;

/// Issues (and records) the CA's own serving certificate.
pub(crate) async fn issue(service: &CaService) -> Result<(), ServeError> {
    let key = KeyPair::generate().map_err(CaError::from)?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .map_err(CaError::from)?;
    let id = SpiffeId::from_parts(&service.config.trust_domain, crate::config::CA_ID_PATH)
        .map_err(|e| CaError::BadCa {
            path: service
                .config
                .ca_dir()
                .map_or_else(DbCa::origin, Path::to_path_buf),
            problem: format!("the CA's own ID: {e}"),
        })?;
    let issued = service.authority().issuer.issue(
        csr.der(),
        &id,
        &service.config.dns_names,
        service.settings.get().ttl.max,
        OffsetDateTime::now_utc(),
    )?;
    // The certificate it replaces is its parent, so rotation does not wait for it to expire.
    let parent = service
        .store
        .current()
        .map(|id| id.leaf().serial_hex.clone());
    let record = CertRecord::issued(&issued, "ca", "self".into(), parent);
    service.state.issue(record, None).await?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    service.store.publish(issued.chain, key)?;
    service
        .metrics
        .issuances
        .get_or_create(&AttestorLabel { attestor: "ca" })
        .inc();
    Ok(())
}

/// Re-issues the CA's own certificate at half its lifetime.
pub(super) async fn renew_at_half_life(service: Arc<CaService>) {
    loop {
        // Half of the remaining validity (notBefore is backdated, so it is not the start).
        let wait = service.store.current().map_or(60, |id| {
            ((id.leaf().not_after - unix_now()) / 2).clamp(5, 86_400)
        });
        tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
        if let Err(e) = issue(&service).await {
            tracing::error!(error = %e, "renewing the CA's own certificate failed; retrying in 60s");
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}
