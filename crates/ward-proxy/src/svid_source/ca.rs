//! The `ca` identity source: enroll with ward-ca, renew before expiry, follow the bundle.
//!
//! The key is generated in memory for every request and never written anywhere. The first
//! certificate comes from `/v1/enroll` with the token in `token_file` (a join token, or a
//! projected service-account token); afterwards `/v1/renew` over mTLS with the current SVID,
//! due at half the lifetime with ±10% jitter so a fleet started together does not renew
//! together. Failures back off exponentially (1 s doubling to 60 s, ±20% jitter) while the
//! current certificate keeps serving until it expires. `/v1/bundle` is fetched at the CA's
//! refresh hint with the ETag; new roots, the allowed issuers and the revocation list apply
//! at once. When the bundle says the CA signs with another issuer than ours (a rotation was
//! activated), the renewal is due at once, so `rotate finish` finds nothing left to wait
//! for; when our own certificate's issuer is no longer allowed at all (retired in an
//! emergency), renewal would be refused, so the source enrolls again with its token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use rcgen::{CertificateParams, KeyPair};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use ward_api::{
    AllowedIssuer, BundleDocument, EnrollRequest, ErrorBody, Issued, IssuerRole, RenewRequest,
};
use ward_identity::{unix_now, TrustDomain};
use ward_tls::files::ContentDigest;
use ward_tls::pem::certs_from_pem;
use ward_tls::{CertStore, Identity, JwtAuthority, Revocation, SpkiHash, TrustBundles};

use super::ca_client::CaClient;
use super::error::{off_workers, IdentityError};
use super::token::{token_unusable, DEAD_TOKEN_RETRY};
use crate::metrics::{RenewalLabels, SourceMetrics};

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Bundle refresh interval when the CA gives no hint, or after a failed fetch.
const DEFAULT_BUNDLE_REFRESH: Duration = Duration::from_secs(30);

/// Enrollment and renewal with a ward CA.
#[derive(Debug)]
pub(crate) struct CaSource {
    client: CaClient,
    token_file: PathBuf,
    trust_domain: TrustDomain,
    renew_at: Option<Instant>,
    /// Renewals and bundle refreshes, counted.
    metrics: SourceMetrics,
    failures: u32,
    retry_at: Instant,
    bundle_etag: Option<String>,
    bundle_at: Instant,
    /// The CA's last `spiffe_refresh_hint` (until the first bundle, a default): the cadence
    /// of bundle fetches, also after a 304 or a failure.
    bundle_hint: Duration,
    /// The issuer the CA signs with, as its last bundle said.
    signing_issuer: Option<SpkiHash>,
    /// The token the CA refused for good (its digest): not sent again until the file changes
    /// or [`DEAD_TOKEN_RETRY`] passes.
    dead_token: Option<ContentDigest>,
}

/// The key hashes of `issuers`, and which one signs now; a malformed hash refuses the whole
/// document rather than trusting less (or more) than the CA said.
fn allowed_issuers(
    path: &'static str,
    issuers: &[AllowedIssuer],
) -> Result<(Vec<SpkiHash>, Option<SpkiHash>), IdentityError> {
    let bad = |detail: String| IdentityError::BadAnswer { path, detail };
    let mut hashes = Vec::with_capacity(issuers.len());
    let mut signing = None;
    for i in issuers {
        let hash = SpkiHash::from_hex(&i.spki_sha256).ok_or_else(|| {
            bad(format!(
                "issuer key hash {:?} is not 64 hex digits",
                i.spki_sha256
            ))
        })?;
        if i.role == IssuerRole::Signing {
            signing = Some(hash);
        }
        hashes.push(hash);
    }
    if hashes.is_empty() {
        return Err(bad("the CA names no issuer".into()));
    }
    Ok((hashes, signing))
}

/// The JWT-SVID signing keys a bundle document publishes (`use: jwt-svid`); a key of a type
/// ward does not verify is skipped (the SPIFFE bundle specification asks that unknown keys be
/// ignored), one malformed key of a known type refuses the whole document, as for issuers.
fn jwt_authorities(
    path: &'static str,
    keys: &[ward_api::Jwk],
) -> Result<Vec<JwtAuthority>, IdentityError> {
    let mut found = Vec::new();
    for k in keys.iter().filter(|k| k.key_use == "jwt-svid") {
        let param = |name: &'static str| match name {
            "x" => k.x.as_str(),
            "y" => k.y.as_str(),
            "n" => k.n.as_str(),
            "e" => k.e.as_str(),
            _ => "",
        };
        let kid = k.kid.clone().unwrap_or_default();
        match JwtAuthority::from_jwk(kid, &k.kty, &k.crv, param) {
            Ok(Some(key)) => found.push(key),
            Ok(None) => {}
            Err(e) => {
                return Err(IdentityError::BadAnswer {
                    path,
                    detail: format!("JWT key {:?}: {e}", k.kid),
                })
            }
        }
    }
    Ok(found)
}

/// What the CA said when it refused: its code and message when the body is the API's error
/// document, else the status and the first bytes of whatever came back.
pub(crate) fn refusal(path: &'static str, status: StatusCode, body: &[u8]) -> IdentityError {
    let (code, detail) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (Some(e.error), format!("{}: {}", e.error, e.message)),
        Err(_) => (
            None,
            String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        ),
    };
    IdentityError::Refused {
        path,
        status: status.as_u16(),
        code,
        detail,
    }
}

/// The CA's answer on `path` as the contract's document `T`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    path: &'static str,
    body: &[u8],
) -> Result<T, IdentityError> {
    serde_json::from_slice(body).map_err(|e| IdentityError::BadAnswer {
        path,
        detail: e.to_string(),
    })
}

/// A fresh key pair (in memory only) and a CSR for it, as PEM.
pub(crate) fn key_and_csr() -> Result<(KeyPair, String), IdentityError> {
    let keygen = |e: rcgen::Error| IdentityError::KeyGeneration(e.to_string());
    let key = KeyPair::generate().map_err(keygen)?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(keygen)?;
    Ok((key, csr))
}

/// A uniform random factor in [1 - spread, 1 + spread].
pub(crate) fn jitter(spread: f64) -> f64 {
    let mut b = [0u8; 4];
    let r = SystemRandom::new().fill(&mut b).map_or(0.5, |()| {
        f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)
    });
    1.0 - spread + 2.0 * spread * r
}

impl CaSource {
    /// A source for the CA at `client`, enrolling with the token in `token_file`.
    pub fn new(
        client: CaClient,
        token_file: PathBuf,
        trust_domain: TrustDomain,
        metrics: SourceMetrics,
    ) -> Self {
        let now = Instant::now();
        Self {
            metrics,
            client,
            token_file,
            trust_domain,
            renew_at: None,
            failures: 0,
            retry_at: now,
            bundle_etag: None,
            bundle_at: now,
            bundle_hint: DEFAULT_BUNDLE_REFRESH,
            signing_issuer: None,
            dead_token: None,
        }
    }

    /// The client of the CA (shared: clones keep the replica that answered last).
    pub fn client(&self) -> &CaClient {
        &self.client
    }

    /// Does whatever is due: refresh the bundle, enroll or renew. `force` makes both due now.
    pub async fn refresh(
        &mut self,
        store: &CertStore,
        force: bool,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        let now = Instant::now();
        if force || now >= self.bundle_at {
            if let Err(e) = self.refresh_bundle(store).await {
                self.bundle_at = now + self.bundle_hint;
                tracing::warn!(error = %e, "bundle refresh failed; keeping the current bundle");
            }
        }
        let current = store.current();
        // Expired, or signed by an issuer the bundle no longer allows (retired): renewal with
        // it would be refused, so enroll again.
        let bundles = store.bundles().current();
        let expired = current.as_ref().is_none_or(|id| {
            id.is_expired_at(unix_now())
                || !bundles.allows_issuer(self.trust_domain.as_str(), &id.issuer())
        });
        // The CA signs with another issuer now: renew under it at once.
        if let (Some(id), Some(signing)) = (current.as_ref(), self.signing_issuer) {
            if id.issuer() != signing && self.renew_at.is_some_and(|at| at > now) {
                tracing::info!("the CA signs with a new issuer; renewing now");
                self.renew_at = Some(now);
            }
        }
        let due = force || expired || self.renew_at.is_none_or(|at| now >= at);
        // A token refused for good is tried again as soon as the file holds another one.
        let token = if expired {
            let t = self.read_token().await?;
            if self
                .dead_token
                .is_some_and(|d| d != ContentDigest::of(&[t.as_bytes()]))
            {
                self.dead_token = None;
                self.retry_at = now;
            }
            Some(t)
        } else {
            None
        };
        if !due || (now < self.retry_at && !force) {
            return Ok(None);
        }
        let outcome = self.obtain(store, token).await;
        let kind = if expired { "enroll" } else { "renew" };
        let result = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        self.metrics
            .renewals
            .get_or_create(&RenewalLabels { kind, result })
            .inc();
        match outcome {
            Ok(identity) => {
                self.failures = 0;
                // Half of what is left now (notBefore is backdated for clock skew, so it is
                // not the start of the useful life).
                let remaining = (identity.leaf().not_after - unix_now()).max(2) as f64;
                let wait = (remaining * 0.5 * jitter(0.1)).max(1.0);
                self.renew_at = Some(Instant::now() + Duration::from_secs_f64(wait));
                tracing::info!(id = %identity.id(), renew_in_secs = wait as u64, "certificate obtained from the CA");
                Ok(Some(identity))
            }
            Err(e) if expired && token_unusable(&e, &self.token_file).is_some() => {
                let digest = ContentDigest::of(&[self.read_token().await?.as_bytes()]);
                self.retry_at = Instant::now() + DEAD_TOKEN_RETRY;
                // Said once per token: the same refusal again is no news.
                if self.dead_token.replace(digest) == Some(digest) {
                    return Ok(None);
                }
                Err(token_unusable(&e, &self.token_file).unwrap_or(e))
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                // 1 s after the first failure, doubling to MAX_BACKOFF (as docs/proxy.md says).
                let backoff =
                    Duration::from_secs(1u64 << (self.failures - 1).min(6)).min(MAX_BACKOFF);
                self.retry_at = Instant::now() + backoff.mul_f64(jitter(0.2));
                Err(IdentityError::Backoff {
                    source: Box::new(e),
                    retry_in: backoff,
                })
            }
        }
    }

    /// The token file's text (read off the async workers).
    async fn read_token(&self) -> Result<String, IdentityError> {
        let path = self.token_file.clone();
        off_workers(&self.token_file, move || {
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Read { path, source })
        })
        .await
    }

    /// Enrolls with `token` (no valid certificate yet) or, without one, renews (mTLS with
    /// the current certificate).
    async fn obtain(
        &mut self,
        store: &CertStore,
        token: Option<String>,
    ) -> Result<Arc<Identity>, IdentityError> {
        let (key, csr) = key_and_csr()?;
        let renew = token.is_none();
        let (path, body) = match token {
            None => (
                ward_api::RENEW,
                serde_json::to_string(&RenewRequest {
                    csr,
                    for_app: false,
                }),
            ),
            Some(token) => {
                let request = EnrollRequest {
                    csr,
                    token: token.trim().to_owned(),
                };
                (ward_api::ENROLL, serde_json::to_string(&request))
            }
        };
        let body = body.map_err(|e| IdentityError::KeyGeneration(e.to_string()))?;
        let resp = self
            .client
            .request(store, Method::POST, path, Some(body), None, renew)
            .await?;
        if resp.status != StatusCode::OK {
            return Err(refusal(path, resp.status, &resp.body));
        }
        let issued: Issued = decode(path, &resp.body)?;
        let chain = certs_from_pem(path, issued.chain.as_bytes())?;
        let roots = certs_from_pem(path, issued.bundle.as_bytes())?;
        let (issuers, signing) = allowed_issuers(path, &issued.issuers)?;
        // Our roots from the answer; everything else (JWT keys, revocations, federated
        // domains) as the last bundle said.
        let mut bundles = (*store.bundles().current()).clone();
        bundles.insert(self.trust_domain.clone(), roots)?;
        bundles.restrict_issuers(&self.trust_domain, issuers)?;
        self.signing_issuer = signing;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        store
            .publish_with_bundles(chain, key, bundles)
            .map_err(|source| IdentityError::Invalid {
                what: path.to_owned(),
                source,
            })
    }

    async fn refresh_bundle(&mut self, store: &CertStore) -> Result<(), IdentityError> {
        let resp = self
            .client
            .request(
                store,
                Method::GET,
                ward_api::BUNDLE,
                None,
                self.bundle_etag.as_deref(),
                false,
            )
            .await?;
        match resp.status {
            StatusCode::NOT_MODIFIED => {
                self.bundle_at = Instant::now() + self.bundle_hint;
                self.metrics.bundle_refreshed.set(unix_now());
                return Ok(());
            }
            StatusCode::OK => {}
            other => return Err(refusal(ward_api::BUNDLE, other, &resp.body)),
        }
        let doc: BundleDocument = decode(ward_api::BUNDLE, &resp.body)?;
        let roots = certs_from_pem(ward_api::BUNDLE, doc.bundle_pem.as_bytes())?;
        let (issuers, signing) = allowed_issuers(ward_api::BUNDLE, &doc.issuers)?;
        let jwt_keys = jwt_authorities(ward_api::BUNDLE, &doc.spiffe_bundle.keys)?;
        let mut bundles = TrustBundles::single(self.trust_domain.clone(), roots)?;
        bundles.restrict_issuers(&self.trust_domain, issuers)?;
        bundles.set_jwt_authorities(self.trust_domain.clone(), jwt_keys);
        // Each federated domain as its own bundle, never merged with ours; one the CA no
        // longer federates with is gone with this document.
        for f in &doc.federated {
            let td = TrustDomain::new(&f.trust_domain).map_err(|e| IdentityError::BadAnswer {
                path: ward_api::BUNDLE,
                detail: format!("federated trust domain {:?}: {e}", f.trust_domain),
            })?;
            if td == self.trust_domain {
                return Err(IdentityError::BadAnswer {
                    path: ward_api::BUNDLE,
                    detail: "a federated bundle for our own trust domain".into(),
                });
            }
            let roots = certs_from_pem(ward_api::BUNDLE, f.bundle_pem.as_bytes())?;
            bundles.insert(td.clone(), roots)?;
            bundles.set_jwt_authorities(td, jwt_authorities(ward_api::BUNDLE, &f.jwt_keys)?);
        }
        self.signing_issuer = signing;
        bundles.set_revocations_of(
            self.trust_domain.clone(),
            doc.revocations
                .into_iter()
                .map(|r| Revocation {
                    spiffe_id: r.spiffe_id,
                    serial: r.serial,
                    revoked_at: r.revoked_at,
                })
                .collect(),
        );
        store.bundles().replace(bundles);
        self.bundle_etag = resp.etag;
        self.bundle_hint = Duration::from_secs(doc.spiffe_bundle.spiffe_refresh_hint)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600));
        self.bundle_at = Instant::now() + self.bundle_hint;
        self.metrics.bundle_refreshed.set(unix_now());
        Ok(())
    }
}
