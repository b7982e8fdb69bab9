//! Following the bundles of the trust domains this CA federates with.
//!
//! At start each configured domain's bundle comes from the state (the last one accepted, so a
//! restart keeps trusting it) or else from its `bundle_file`. Then one task per domain fetches
//! its bundle endpoint at the domain's own refresh hint (between [`MIN_REFRESH`] and
//! [`MAX_REFRESH`]): `https_spiffe` endpoints are authenticated with the domain's bundle in
//! force, so a root rotation over there is followed without touching the config; `https_web`
//! ones with the configured roots. A document is accepted only whole ([`crate::config::federation::
//! foreign_bundle::parse`]) and only if its sequence does not go backwards (compared only when both
//! documents carry one: the field is optional); then it is stored and served to sidecars. Any
//! failure keeps the last good bundle, is logged (once per distinct failure) and counted, and
//! is retried with backoff: never a merged bundle.
//!
//! The one way a bundle empties: an authenticated endpoint serving a document whose `keys` is
//! empty, which the SPIFFE bundle specification reads as "every key of this trust domain is
//! revoked". It is believed, stored, counted (`ward_ca_federation_emptied_total`) and logged
//! as an error; sidecars then drop the domain and refuse its SVIDs. An `https_spiffe` endpoint
//! can no longer be authenticated after that (its keys are the revoked ones): the operator
//! re-bootstraps with a new `bundle_file` and `ward-ca federation forget`.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode, Uri};
use ward_https::{HttpsRequest, Limits, ServerAuth};
use ward_identity::{IdPattern, TrustDomain};
use ward_tls::{BundleStore, PemError, TrustBundles};

use super::metrics::DomainLabel;
use super::CaService;
use crate::authority::foreign_bundle::{self, BundleError, ForeignBundle, MAX_DOCUMENT};
use crate::authority::records::FederatedRecord;
use crate::config::federation::{Federate, FetchAuth};
use crate::state::unix_now;

/// Shortest wait between fetches of one domain.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Longest wait between fetches of one domain.
pub const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// The wait when a bundle names no refresh hint.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Longest wait after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(15),
    max_body: MAX_DOCUMENT,
};

/// Puts each configured domain's starting bundle in force: the state's, else `bundle_file`'s.
pub(super) async fn load(service: &CaService) -> Result<(), super::ServeError> {
    let stored = service.state.federated_bundles().await?;
    for f in &service.config.federation.federates_with {
        let td = &f.trust_domain;
        let from_state = stored
            .iter()
            .find(|r| r.trust_domain == td.as_str())
            .and_then(|r| match foreign_bundle::parse(td, r.document.as_bytes()) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(trust_domain = %td, error = %e, "the stored foreign bundle is unusable; trying bundle_file");
                    None
                }
            });
        let found = match (from_state, &f.bundle_file) {
            (Some(b), _) => Some(b),
            (None, Some(file)) => {
                let bad = |problem: String| {
                    super::ServeError::from(crate::authority::error::CaError::BadCa {
                        path: file.clone(),
                        problem,
                    })
                };
                let bytes = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
                let b = foreign_bundle::parse(td, &bytes)
                    .map_err(|e| bad(format!("not a usable SPIFFE bundle of {td}: {e}")))?;
                if b.revokes_all() {
                    return Err(bad(format!(
                        "a bundle of {td} with no keys anchors nothing: a bundle_file must hold its roots"
                    )));
                }
                store(service, &b).await?;
                Some(b)
            }
            (None, None) => None,
        };
        match found {
            Some(b) if b.revokes_all() => {
                tracing::error!(trust_domain = %td, "every key of this foreign trust domain was revoked by its last bundle: its workloads are refused (re-bootstrap: operations.md, \"Federation\")");
                record(service, &b);
                service.foreign.set(b);
            }
            Some(b) => {
                tracing::info!(trust_domain = %td, sequence = %shown(b.sequence), roots = b.roots.len(), ignored = b.ignored.len(), "foreign bundle in force");
                record(service, &b);
                service.foreign.set(b);
            }
            None => {
                tracing::warn!(trust_domain = %td, "no bundle yet for this foreign trust domain: its workloads are refused until the first fetch")
            }
        }
    }
    Ok(())
}

/// A sequence as a log field: the number, or `-` when the document has none.
fn shown(sequence: Option<u64>) -> String {
    sequence.map_or_else(|| "-".into(), |s| s.to_string())
}

async fn store(service: &CaService, b: &ForeignBundle) -> Result<(), crate::state::StateError> {
    service
        .state
        .store_federated(FederatedRecord {
            trust_domain: b.trust_domain.to_string(),
            document: b.document.clone(),
            // -1: the document carries no sequence (it is optional).
            sequence: b
                .sequence
                .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
            refreshed_at: unix_now(),
        })
        .await
}

fn record(service: &CaService, b: &ForeignBundle) {
    let label = DomainLabel {
        trust_domain: b.trust_domain.to_string(),
    };
    service
        .metrics
        .federation_refreshed
        .get_or_create(&label)
        .set(unix_now());
    let sequences = &service.metrics.federation_sequence;
    match b.sequence {
        Some(s) => {
            sequences
                .get_or_create(&label)
                .set(i64::try_from(s).unwrap_or(i64::MAX));
        }
        None => {
            sequences.remove(&label);
        }
    }
}

/// Why a fetch changed nothing.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// No bundle yet to authenticate an `https_spiffe` endpoint with.
    #[error("no bundle of {0} to authenticate its endpoint with (give bundle_file)")]
    NoBundle(TrustDomain),
    /// The bundle in force revokes every key, so the endpoint cannot be authenticated.
    #[error("every key of {0} was revoked by its last bundle, so its https_spiffe endpoint cannot be authenticated: put its new bundle in bundle_file, run `ward-ca federation forget --trust-domain {0}` and restart")]
    Revoked(TrustDomain),
    /// Roots that do not make a trust bundle (or a `ca_file` that cannot be read).
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The endpoint's SPIFFE ID is not a pattern.
    #[error(transparent)]
    Id(#[from] ward_identity::IdError),
    /// The URL does not parse.
    #[error("bad url {0}")]
    Url(String),
    /// No answer, or not over TLS the endpoint could be authenticated by.
    #[error(transparent)]
    Https(#[from] ward_https::HttpsError),
    /// An answer other than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The configured URL.
        url: String,
        /// What it answered.
        status: StatusCode,
    },
    /// A document refused whole.
    #[error("{url}: {source}")]
    Bundle {
        /// The configured URL.
        url: String,
        /// Why.
        source: BundleError,
    },
    /// A document whose sequence goes backwards.
    #[error("{url}: {source}; keeping the bundle in force")]
    Backwards {
        /// The configured URL.
        url: String,
        /// By how much.
        source: BundleError,
    },
    /// The state did not store it.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// One fetch: the new bundle's refresh hint, or why nothing changed.
async fn fetch_once(service: &CaService, f: &Federate) -> Result<Duration, FetchError> {
    let td = &f.trust_domain;
    let current = service.foreign.get(td);
    let auth = match &f.auth {
        FetchAuth::HttpsSpiffe { endpoint_id } => {
            let known = current
                .as_ref()
                .ok_or_else(|| FetchError::NoBundle(td.clone()))?;
            if known.revokes_all() {
                return Err(FetchError::Revoked(td.clone()));
            }
            let bundles = TrustBundles::single(td.clone(), known.roots.clone())?;
            ServerAuth::Spiffe {
                bundles: BundleStore::new(bundles),
                expected: vec![IdPattern::parse(endpoint_id.as_str())?],
                identity: None,
            }
        }
        FetchAuth::HttpsWeb { ca_file } => ServerAuth::Roots(ward_tls::pem::load_certs(ca_file)?),
    };
    let url: Uri = f.url.parse().map_err(|_| FetchError::Url(f.url.clone()))?;
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let req = HttpsRequest {
        method: Method::GET,
        url: &url,
        path: &path,
        headers: Vec::new(),
        body: None,
    };
    let resp = ward_https::send(&auth, req, LIMITS).await?;
    if resp.status != StatusCode::OK {
        return Err(FetchError::Status {
            url: f.url.clone(),
            status: resp.status,
        });
    }
    let new = foreign_bundle::parse(td, &resp.body).map_err(|source| FetchError::Bundle {
        url: f.url.clone(),
        source,
    })?;
    if let Some(cur) = &current {
        new.follows(cur).map_err(|source| FetchError::Backwards {
            url: f.url.clone(),
            source,
        })?;
    }
    let hint = new
        .refresh_hint
        .map_or(DEFAULT_REFRESH, Duration::from_secs)
        .clamp(MIN_REFRESH, MAX_REFRESH);
    record(service, &new);
    if current.as_ref().is_none_or(|c| c.document != new.document) {
        store(service, &new).await?;
        if new.revokes_all() {
            service
                .metrics
                .federation_emptied
                .get_or_create(&DomainLabel {
                    trust_domain: td.to_string(),
                })
                .inc();
            tracing::error!(trust_domain = %td, url = %f.url, "the foreign bundle endpoint served no keys: every key of this trust domain is revoked and its workloads are refused from now on");
        } else {
            tracing::info!(trust_domain = %td, sequence = %shown(new.sequence), roots = new.roots.len(), jwt_keys = new.jwt_keys.len(), "foreign bundle updated");
        }
        if !new.ignored.is_empty() {
            tracing::info!(trust_domain = %td, ignored = %new.ignored.join("; "), "keys of a type or use ward does not verify were ignored, as the SPIFFE bundle specification asks");
        }
        service.foreign.set(new);
    }
    Ok(hint)
}

/// Keeps the bundle of `f`'s trust domain current until the task is aborted.
pub(super) async fn follow(service: Arc<CaService>, f: Federate) {
    let label = DomainLabel {
        trust_domain: f.trust_domain.to_string(),
    };
    let mut failures = 0u32;
    let mut last_error = String::new();
    loop {
        let wait = match fetch_once(&service, &f).await {
            Ok(hint) => {
                if failures > 0 {
                    tracing::info!(trust_domain = %f.trust_domain, "foreign bundle endpoint answers again");
                }
                failures = 0;
                last_error.clear();
                hint
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                service
                    .metrics
                    .federation_failures
                    .get_or_create(&label)
                    .inc();
                let text = e.to_string();
                if text != last_error {
                    tracing::error!(trust_domain = %f.trust_domain, error = %text, "foreign bundle refresh failed; keeping the last good bundle");
                    last_error = text;
                }
                Duration::from_secs(1u64 << (failures - 1).min(6)).min(MAX_BACKOFF)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
