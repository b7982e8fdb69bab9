//! The `SpiffeWorkloadAPI` service: what each call answers.
//!
//! Streams (`FetchX509SVID`, `FetchX509Bundles`, `FetchJWTBundles`) send the full current
//! state at once, then again whenever the app's SVID or the bundles change (never the same
//! message twice). They read only the sidecar's own state, so they live through renewals and
//! CA restarts; a client that goes away drops its stream and with it everything it held.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use ward_identity::{unix_now, SpiffeId, TrustDomain};
use ward_tls::{BundleStore, TrustBundles};

use crate::cache::{IssueError, JwtCache, JwtIssuer};
use crate::metrics::{ApiMetrics, StreamGuard};
use crate::pb::spiffe_workload_api_server::SpiffeWorkloadApi;
use crate::pb::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse,
    X509svid, X509svidRequest, X509svidResponse,
};
use crate::{jwt, X509Svid};

/// The longest audience value accepted from the app (the CA bounds it too).
const MAX_AUDIENCE: usize = 256;
/// The most audience values in one request.
const MAX_AUDIENCES: usize = 16;

/// What the service serves from.
pub struct Sources {
    /// The app's own X.509-SVID (not the sidecar's), as it is renewed.
    pub svid: watch::Receiver<Option<Arc<X509Svid>>>,
    /// The trust bundles (X.509 roots and JWT keys, by trust domain).
    pub bundles: BundleStore,
    /// Where JWT-SVIDs come from.
    pub issuer: Arc<dyn JwtIssuer>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// The service.
#[derive(Debug)]
pub struct WorkloadApi {
    svid: watch::Receiver<Option<Arc<X509Svid>>>,
    bundles: BundleStore,
    jwts: JwtCache,
    metrics: ApiMetrics,
}

type Updates<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The inputs every streamed message is built from.
struct Watching<T> {
    svid: watch::Receiver<Option<Arc<X509Svid>>>,
    bundles: watch::Receiver<Arc<TrustBundles>>,
    last: Option<T>,
    _open: StreamGuard,
}

/// `spiffe://<td>`: how the Workload API keys bundles.
fn td_key(td: &TrustDomain) -> String {
    format!("spiffe://{td}")
}

fn roots_der(bundles: &TrustBundles, td: &TrustDomain) -> Vec<u8> {
    bundles
        .roots(td)
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.as_ref().iter().copied())
        .collect()
}

fn x509_svid_message(svid: Option<&X509Svid>, bundles: &TrustBundles) -> Option<X509svidResponse> {
    let svid = svid?;
    let own = svid.id.trust_domain();
    let federated_bundles = bundles
        .trust_domains()
        .filter(|td| **td != own)
        .map(|td| (td_key(td), roots_der(bundles, td)))
        .collect();
    Some(X509svidResponse {
        svids: vec![X509svid {
            spiffe_id: svid.id.to_string(),
            x509_svid: svid
                .chain
                .iter()
                .flat_map(|c| c.as_ref().iter().copied())
                .collect(),
            x509_svid_key: svid.key.to_vec(),
            bundle: roots_der(bundles, &own),
            hint: String::new(),
        }],
        crl: Vec::new(),
        federated_bundles,
    })
}

fn x509_bundles_message(bundles: &TrustBundles) -> Option<X509BundlesResponse> {
    let map: std::collections::HashMap<_, _> = bundles
        .trust_domains()
        .map(|td| (td_key(td), roots_der(bundles, td)))
        .collect();
    (!map.is_empty()).then_some(X509BundlesResponse {
        crl: Vec::new(),
        bundles: map,
    })
}

fn jwt_bundles_message(bundles: &TrustBundles) -> Option<JwtBundlesResponse> {
    Some(JwtBundlesResponse {
        bundles: bundles
            .all_jwt_authorities()
            .map(|(td, keys)| (td_key(td), jwt::jwks(keys)))
            .collect(),
    })
}

fn invalid(what: impl Into<String>) -> Status {
    Status::invalid_argument(what)
}

impl WorkloadApi {
    /// A service over `sources`, counting its open streams in `metrics`.
    pub fn new(sources: Sources, metrics: ApiMetrics) -> Self {
        Self {
            svid: sources.svid,
            bundles: sources.bundles,
            jwts: JwtCache::new(sources.issuer),
            metrics,
        }
    }

    /// A stream of `build(svid, bundles)` whenever it changes (`None`: nothing to send yet).
    fn updates<T>(&self, build: fn(Option<&X509Svid>, &TrustBundles) -> Option<T>) -> Updates<T>
    where
        T: PartialEq + Clone + Send + 'static,
    {
        let state = Watching {
            svid: self.svid.clone(),
            bundles: self.bundles.subscribe(),
            last: None,
            _open: StreamGuard::open(&self.metrics),
        };
        Box::pin(futures_util::stream::unfold(
            state,
            move |mut st| async move {
                loop {
                    let next = {
                        let svid = st.svid.borrow_and_update().clone();
                        let bundles = st.bundles.borrow_and_update().clone();
                        build(svid.as_deref(), &bundles)
                    };
                    if let Some(msg) = next.filter(|m| st.last.as_ref() != Some(m)) {
                        st.last = Some(msg.clone());
                        return Some((Ok(msg), st));
                    }
                    let changed = tokio::select! {
                        r = st.svid.changed() => r,
                        r = st.bundles.changed() => r,
                    };
                    if changed.is_err() {
                        return None;
                    }
                }
            },
        ))
    }

    fn own_id(&self) -> Result<SpiffeId, Status> {
        self.svid
            .borrow()
            .as_ref()
            .map(|s| s.id.clone())
            .ok_or_else(|| Status::unavailable("the sidecar has no SVID for this workload yet"))
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Updates<X509svidResponse>;

    async fn fetch_x509svid(
        &self,
        _request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        Ok(Response::new(self.updates(x509_svid_message)))
    }

    type FetchX509BundlesStream = Updates<X509BundlesResponse>;

    async fn fetch_x509_bundles(
        &self,
        _request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Ok(Response::new(self.updates(|_, b| x509_bundles_message(b))))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let req = request.into_inner();
        if req.audience.is_empty() {
            return Err(invalid("audience: give at least one"));
        }
        if req.audience.len() > MAX_AUDIENCES {
            return Err(invalid(format!("audience: at most {MAX_AUDIENCES} values")));
        }
        if let Some(a) = req
            .audience
            .iter()
            .find(|a| a.is_empty() || a.len() > MAX_AUDIENCE)
        {
            return Err(invalid(format!(
                "audience {a:?}: each value must be 1 to {MAX_AUDIENCE} bytes"
            )));
        }
        let own = self.own_id()?;
        if !req.spiffe_id.is_empty() && req.spiffe_id != own.as_str() {
            return Err(Status::permission_denied(format!(
                "this workload holds only {own}, not {}",
                req.spiffe_id
            )));
        }
        let issued = self.jwts.get(&req.audience).await.map_err(|e| match e {
            IssueError::BadRequest(m) => Status::invalid_argument(m),
            IssueError::Denied(m) => Status::permission_denied(m),
            IssueError::Unavailable(m) => Status::unavailable(m),
        })?;
        Ok(Response::new(JwtsvidResponse {
            svids: vec![Jwtsvid {
                spiffe_id: issued.spiffe_id,
                svid: issued.token,
                hint: String::new(),
            }],
        }))
    }

    type FetchJWTBundlesStream = Updates<JwtBundlesResponse>;

    async fn fetch_jwt_bundles(
        &self,
        _request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Ok(Response::new(self.updates(|_, b| jwt_bundles_message(b))))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        let req = request.into_inner();
        if req.audience.is_empty() {
            return Err(invalid("audience: required"));
        }
        if req.svid.is_empty() {
            return Err(invalid("svid: required"));
        }
        let bundles = self.bundles.current();
        let ok = jwt::validate(&bundles, &req.svid, &req.audience, unix_now())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: ok.spiffe_id.to_string(),
            claims: Some(jwt::to_struct(&ok.claims)),
        }))
    }
}
