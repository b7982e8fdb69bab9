//! The app's own identity for the Workload API: a second X.509-SVID with the sidecar's SPIFFE
//! ID for a key pair made for the app, and JWT-SVIDs, both asked of the CA over mTLS with the
//! sidecar's SVID (`/v1/renew`, `/v1/jwt`).
//!
//! The sidecar's key never leaves its memory; the app's key exists only to be handed to the
//! app, so an app that leaks it leaks a certificate that lives an hour, not the sidecar. The
//! app's certificate is renewed like the sidecar's (half its life, ±10% jitter, backoff on
//! failure), and at once when the CA signs with another issuer (the sidecar renewed under it
//! first) or when its own issuer is no longer allowed.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use tokio::sync::watch;
use tokio::time::Instant;
use ward_api::{Issued, JwtIssued, JwtRequest, RenewRequest};
use ward_identity::{unix_now, TrustDomain};
use ward_tls::pem::certs_from_pem;
use ward_tls::{CertStore, Identity};
use ward_workload::{IssueError, IssueFuture, IssuedJwt, JwtIssuer, X509Svid};
use zeroize::Zeroizing;

use super::ca::{decode, jitter, key_and_csr, refusal};
use super::ca_client::CaClient;
use super::IdentityError;

/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The app's current SVID and the validated identity behind it.
type Current = Option<(Arc<Identity>, Arc<X509Svid>)>;

/// Keeps the app's X.509-SVID in `tx` current until the sender's last receiver is gone.
pub(crate) async fn keep_app_svid(
    client: CaClient,
    store: Arc<CertStore>,
    trust_domain: TrustDomain,
    tx: watch::Sender<Option<Arc<X509Svid>>>,
) {
    let mut sidecar = store.subscribe();
    let mut bundles = store.bundles().subscribe();
    let mut current: Current = None;
    let mut renew_at = Instant::now();
    let mut failures = 0u32;
    loop {
        let now = Instant::now();
        let due = match (&current, store.current()) {
            (_, None) => false,
            (_, Some(own)) if own.is_expired_at(unix_now()) => false,
            (None, Some(_)) => now >= renew_at,
            (Some((app, _)), Some(own)) => {
                let allowed = store
                    .bundles()
                    .current()
                    .allows_issuer(trust_domain.as_str(), &app.issuer());
                // A new issuer is followed at once, unless a try just failed (then: backoff).
                let moved = app.issuer() != own.issuer() || !allowed;
                now >= renew_at || (moved && failures == 0)
            }
        };
        if due {
            match obtain(&client, &store, &trust_domain).await {
                Ok((identity, svid)) => {
                    failures = 0;
                    let remaining = (svid.not_after - unix_now()).max(2) as f64;
                    let wait = (remaining * 0.5 * jitter(0.1)).max(1.0);
                    renew_at = Instant::now() + Duration::from_secs_f64(wait);
                    tracing::info!(id = %svid.id, serial = %identity.leaf().serial_hex, renew_in_secs = wait as u64, "app SVID for the Workload API obtained");
                    current = Some((identity, svid.clone()));
                    tx.send_replace(Some(svid));
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff =
                        Duration::from_secs(1u64 << (failures - 1).min(6)).min(MAX_BACKOFF);
                    renew_at = Instant::now() + backoff.mul_f64(jitter(0.2));
                    tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "app SVID renewal failed; the current one stays in use");
                }
            }
        }
        let wait_until = if current.is_none() && failures == 0 {
            Instant::now() + Duration::from_secs(3600)
        } else {
            renew_at
        };
        tokio::select! {
            () = tokio::time::sleep_until(wait_until) => {}
            r = sidecar.changed() => if r.is_err() { return },
            r = bundles.changed() => if r.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

/// One `/v1/renew` with the sidecar's SVID for a new app key.
async fn obtain(
    client: &CaClient,
    store: &CertStore,
    trust_domain: &TrustDomain,
) -> Result<(Arc<Identity>, Arc<X509Svid>), IdentityError> {
    let (key, csr) = key_and_csr()?;
    let body = serde_json::to_string(&RenewRequest { csr, for_app: true })
        .map_err(|e| IdentityError::KeyGeneration(e.to_string()))?;
    let path = ward_api::RENEW;
    let resp = client
        .request(store, Method::POST, path, Some(body), None, true)
        .await?;
    if resp.status != StatusCode::OK {
        return Err(refusal(path, resp.status, &resp.body));
    }
    let issued: Issued = decode(path, &resp.body)?;
    let chain = certs_from_pem(path, issued.chain.as_bytes())?;
    let pkcs8 = Zeroizing::new(key.serialize_der());
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    let identity = Identity::validate(
        trust_domain,
        &store.bundles().current(),
        chain.clone(),
        der,
        UnixTime::now(),
    )
    .map_err(|source| IdentityError::Invalid {
        what: format!("{path} (app SVID)"),
        source,
    })?;
    let svid = X509Svid {
        id: identity.id().clone(),
        chain,
        key: pkcs8,
        not_after: identity.leaf().not_after,
    };
    Ok((Arc::new(identity), Arc::new(svid)))
}

/// JWT-SVIDs from the CA's `/v1/jwt`, asked with the sidecar's SVID.
#[derive(Debug)]
pub(crate) struct CaJwtIssuer {
    /// The CA.
    pub client: CaClient,
    /// The sidecar's identity (mTLS) and bundles.
    pub store: Arc<CertStore>,
}

impl CaJwtIssuer {
    async fn ask(&self, audience: &[String]) -> Result<IssuedJwt, IssueError> {
        if self
            .store
            .current()
            .is_none_or(|id| id.is_expired_at(unix_now()))
        {
            return Err(IssueError::Unavailable(
                "the sidecar has no valid SVID to ask the CA with".into(),
            ));
        }
        let request = JwtRequest {
            audience: audience.to_vec(),
            ttl: None,
        };
        let body =
            serde_json::to_string(&request).map_err(|e| IssueError::BadRequest(e.to_string()))?;
        let path = ward_api::JWT;
        let resp = self
            .client
            .request(&self.store, Method::POST, path, Some(body), None, true)
            .await
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        if resp.status != StatusCode::OK {
            let why = refusal(path, resp.status, &resp.body).to_string();
            return Err(match resp.status {
                StatusCode::BAD_REQUEST => IssueError::BadRequest(why),
                s if s.is_client_error() => IssueError::Denied(why),
                _ => IssueError::Unavailable(why),
            });
        }
        let issued: JwtIssued =
            decode(path, &resp.body).map_err(|e| IssueError::Unavailable(e.to_string()))?;
        Ok(IssuedJwt {
            token: issued.token,
            spiffe_id: issued.spiffe_id,
            issued_at: unix_now(),
            expires_at: issued.expires_at,
        })
    }
}

impl JwtIssuer for CaJwtIssuer {
    fn issue<'a>(&'a self, audience: &'a [String]) -> IssueFuture<'a> {
        Box::pin(self.ask(audience))
    }
}
