//! The SPIFFE Workload API in the sidecar (the endpoint itself is the `ward-workload` crate):
//! what `start` spawns for the `workload_api:` section (read in `workload_config`): the socket server,
//! the task keeping the app's own X.509-SVID current, and the CA-backed JWT-SVID issuer.
//!
//! Only a sidecar with `identity: ca` can serve it: the app's SVID is a second certificate
//! asked of the CA for a key made for the app, and the files source has no CA to ask (handing
//! the app the sidecar's own key is exactly what the Workload API here promises never to do).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use ward_daemon::{Lifecycle, Phase};
use ward_identity::TrustDomain;
use ward_tls::CertStore;
use ward_workload::{Sources, WorkloadApi, WorkloadApiConfig};

use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::svid_source::app::{keep_app_svid, CaJwtIssuer};
use crate::svid_source::ca_client::CaClient;

/// Binds the socket (so a taken path stops `start` before anything runs) and returns a
/// function that spawns the Workload API's tasks.
pub(crate) fn prepare(
    config: &WorkloadApiConfig,
) -> Result<impl FnOnce(Spawn) -> Vec<JoinHandle<()>>, ProxyError> {
    let (listener, guard) = ward_workload::socket::bind(config)?;
    let config = config.clone();
    Ok(move |s: Spawn| {
        let client = s.client;
        let (tx, svid) = watch::channel(None);
        let issuer = Arc::new(CaJwtIssuer {
            client: client.clone(),
            store: s.store.clone(),
        });
        let sources = Sources {
            svid,
            bundles: s.store.bundles().clone(),
            issuer,
        };
        let api_metrics = s.metrics.workload_api.clone();
        let api = Arc::new(WorkloadApi::new(sources, api_metrics.clone()));
        let lifecycle = s.lifecycle;
        tracing::info!(socket = %config.socket.display(), uids = ?config.allowed_uids, gids = ?config.allowed_gids, "Workload API listening");
        vec![
            tokio::spawn(keep_app_svid(client, s.store, s.trust_domain, tx)),
            tokio::spawn(ward_workload::server::serve(
                listener,
                guard,
                config,
                api,
                api_metrics,
                async move { lifecycle.reached(Phase::Draining).await },
            )),
        ]
    })
}

/// What the Workload API's tasks need from the running proxy.
pub(crate) struct Spawn<'a> {
    /// The proxy's own CA client (`workload_api` requires `identity: ca`).
    pub client: CaClient,
    pub store: Arc<CertStore>,
    pub trust_domain: TrustDomain,
    pub metrics: &'a Metrics,
    pub lifecycle: Lifecycle,
}
