//! Keeping the daemon on the CA directory's current material: the directory is checked every
//! second; a change is loaded whole and validated ([`Authority::load`]) before it replaces the
//! current material, and a directory that fails any check, or one caught in the middle of an
//! activation, changes nothing. When the issuer changes, the daemon's own serving certificate
//! is re-issued under it at once. (Replicas on a database follow it in `replica`.)

use std::sync::Arc;
use std::time::Duration;

use ward_tls::files::ContentWatch;

use super::CaService;
use crate::authority::error::CaError;
use crate::authority::Authority;
use crate::keys::dir::fingerprint;

/// How often the CA directory is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Installs `authority`: new signer, new bundle for `/v1/bundle`, for enrollment answers and
/// for the CA's own TLS (clients with certificates under any published root are accepted).
pub(super) fn install(service: &CaService, authority: Authority) -> Result<bool, CaError> {
    let bundles = authority.trust_bundles(&service.config.trust_domain)?;
    service
        .metrics
        .issuer_expiry
        .set(authority.issuer.not_after().unix_timestamp());
    let new_issuer = service.authority().issuer.issuer_serial() != authority.issuer.issuer_serial();
    tracing::info!(
        issuer_serial = authority.issuer.issuer_serial(),
        roots = authority.roots.len(),
        bundle_version = authority.bundle_version,
        "CA material loaded"
    );
    if let Ok(mut guard) = service.authority.write() {
        *guard = Arc::new(authority);
    }
    service.store.bundles().replace(bundles);
    Ok(new_issuer)
}

/// Watches the CA directory and installs what changes in it.
pub(super) async fn watch(service: Arc<CaService>, dir: std::path::PathBuf) {
    let mut watch = fingerprint(&dir).map_or_else(ContentWatch::default, ContentWatch::seen);
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        // File reads run off the async workers: a slow disk must not stall requests.
        let probe = dir.clone();
        let Ok(Some(now)) = tokio::task::spawn_blocking(move || fingerprint(&probe)).await else {
            continue;
        };
        if !watch.changed(now) {
            continue;
        }
        let (load_dir, td) = (dir.clone(), service.config.trust_domain.clone());
        let loaded = tokio::task::spawn_blocking(move || Authority::load(&load_dir, &td))
            .await
            .unwrap_or_else(|e| {
                Err(CaError::BadCa {
                    path: dir.clone(),
                    problem: format!("loading stopped: {e}"),
                })
            });
        let result = loaded.and_then(|authority| install(&service, authority));
        match result {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = super::own_identity::issue(&service).await {
                    tracing::error!(error = %e, "re-issuing the CA's own certificate under the new issuer failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "CA directory changed but cannot be used; still signing with the previous material");
            }
        }
    }
}
