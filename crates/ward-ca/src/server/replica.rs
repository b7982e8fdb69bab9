//! A replica of a CA kept in PostgreSQL following the stored CA version: every heartbeat says
//! which version it serves and reads the stored one; a newer one is loaded, checked and
//! installed (through [`super::follow::install`]), and one it cannot use yet leaves it
//! [`Behind`]: unready and not signing, trying again every beat. The heartbeat is what
//! `ward-ca rotate` waits for.

use std::sync::Arc;

use super::follow::install;
use super::CaService;
use crate::authority::error::CaError;
use crate::authority::Authority;
use crate::keys::db::{DbCa, BEAT_EVERY, LIVE_WINDOW_SECS};
use crate::keys::KeysError;

/// Whether this replica serves the CA version the database holds: `Some(why)` while it does
/// not (a version it could not load or install yet, an older version than it serves, or no
/// answer from the database for longer than a replica stays live). While behind, the
/// replica is not ready (`/readyz` 503) and refuses to sign (503 `issuer_unavailable`): it
/// would sign with, publish and accept an issuer the CA may have retired.
#[derive(Debug, Default)]
pub struct Behind(std::sync::Mutex<Option<String>>);

impl Behind {
    /// Why this replica is behind, if it is.
    pub fn why(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, why: Option<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// With the CA in the database: every [`BEAT_EVERY`], says which version this replica serves
/// and checks the stored one. A newer one is loaded, checked and installed; one that cannot
/// be (a slow read, material that does not check out) leaves the replica behind
/// ([`Behind`]) and is tried again at every beat until it installs, reported once per
/// version. A stored version older than the one served is never installed. The heartbeat
/// reports what is installed, which is what `ward-ca rotate` waits for.
pub(super) async fn follow_db(service: Arc<CaService>, ca: DbCa, mut loaded: i64, name: String) {
    let started = crate::state::unix_now();
    if let Err(e) = ca.prune().await {
        tracing::warn!(error = %e, "could not prune old replica heartbeats");
    }
    let mut reported = None;
    let mut unreachable = false;
    let mut heard = tokio::time::Instant::now();
    // The first heartbeat goes out at once: a replica that serves is one `rotate` waits for.
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::time::sleep(BEAT_EVERY).await;
        }
        let stored = match ca.beat(&name, loaded, started).await {
            Ok(v) => {
                unreachable = false;
                heard = tokio::time::Instant::now();
                v
            }
            Err(e) => {
                if !std::mem::replace(&mut unreachable, true) {
                    tracing::warn!(error = %e, "cannot check the CA material in the database");
                }
                let silent = heard.elapsed().as_secs();
                if silent > LIVE_WINDOW_SECS.unsigned_abs() {
                    service.behind.set(Some(format!(
                        "cannot tell which CA version the database holds (no answer for {silent}s): {e}"
                    )));
                }
                continue;
            }
        };
        let stored = match stored {
            Some(v) if v > loaded => v,
            Some(v) if v < loaded => {
                let why = format!("the database holds CA version {v}, older than the {loaded} this replica serves; it never goes back (restore the newer CA material, or restart the replicas to serve what is stored)");
                if reported != Some(v) {
                    tracing::error!(stored = v, serving = loaded, "{why}");
                    reported = Some(v);
                }
                service.behind.set(Some(why));
                continue;
            }
            _ => {
                service.behind.set(None);
                continue;
            }
        };
        let installed = match ca.load().await {
            Ok(Some((_, version))) if version < loaded => Err(KeysError::Ca(CaError::BadCa {
                path: DbCa::origin(),
                problem: format!("version {version} is older than the {loaded} served"),
            })),
            Ok(Some((material, version))) => {
                Authority::from_material(&material, ca.trust_domain(), &DbCa::origin())
                    .and_then(|authority| install(&service, authority))
                    .map(|new_issuer| (version, new_issuer))
                    .map_err(KeysError::from)
            }
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        match installed {
            Ok((version, new_issuer)) => {
                if new_issuer {
                    if let Err(e) = super::own_identity::issue(&service).await {
                        tracing::error!(error = %e, "re-issuing the CA's own certificate under the new issuer failed");
                    }
                }
                if reported.is_some() {
                    tracing::info!(
                        version,
                        "CA version from the database installed; this replica is current again"
                    );
                }
                loaded = version;
                reported = None;
                service.behind.set(None);
            }
            Err(e) => {
                if reported != Some(stored) {
                    tracing::error!(error = %e, version = stored, serving = loaded, "the CA material in the database changed but cannot be used yet; not ready and not signing until it is (tried again every second)");
                    reported = Some(stored);
                }
                service.behind.set(Some(format!(
                    "CA version {stored} from the database is not installed yet (serving {loaded}): {e}"
                )));
            }
        }
    }
}
