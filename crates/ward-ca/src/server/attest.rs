//! Attestors: turning a proof (join token or Kubernetes token) into the SPIFFE ID to certify.
//! The ID always comes from the proof, never from the CSR.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use ward_identity::{SpiffeId, TrustDomain};
use ward_tls::files::{ContentDigest, ContentWatch};

use crate::authority::id_template::{render_template, IdTemplateError};
use crate::authority::kube_jwt::{self, Jwks, JwtError};
use crate::config::{JwksSource, KubernetesConfig};
use crate::server::jwks_fetch::{self, JwksError};

/// How often a JWKS file is checked for new keys.
const FILE_RECHECK: Duration = Duration::from_secs(5);
/// How often a JWKS URL is fetched when nothing asks sooner.
const URL_REFRESH: Duration = Duration::from_secs(300);
/// Closest two reads may be, however many tokens name an unknown key.
const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Verifies Kubernetes projected service-account tokens.
#[derive(Debug)]
pub struct KubernetesAttestor {
    config: KubernetesConfig,
    trust_domain: TrustDomain,
    /// The keys in force: the content last seen at their source, and the keys themselves.
    keys: Mutex<(ContentWatch, Jwks)>,
    /// Asks the URL refresher to fetch now (a token named a key we do not have).
    refresh: Arc<Notify>,
    /// The refresher task, stopped when this attestor is dropped (a reload builds a new one:
    /// the old task must not go on fetching with the old URL and bearer token).
    refresher: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for KubernetesAttestor {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get() {
            task.abort();
        }
    }
}

/// Why a Kubernetes token was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum KubeError {
    /// The token itself.
    Token(JwtError),
    /// The resulting ID is not acceptable (bad characters in a name, say).
    Id(IdTemplateError),
    /// The JWKS cannot be read (a server-side problem).
    Jwks(JwksError),
}

/// The bytes of the key set, wherever they are; never on the async workers' threads.
async fn read_source(source: &JwksSource) -> Result<Vec<u8>, JwksError> {
    match source {
        JwksSource::File(path) => jwks_fetch::read_file(path).await,
        JwksSource::Url(src) => jwks_fetch::fetch(src).await,
    }
}

async fn load(source: &JwksSource) -> Result<(Vec<u8>, Jwks), JwksError> {
    let raw = read_source(source).await?;
    let jwks = Jwks::parse(&raw).map_err(|problem| JwksError::Invalid {
        origin: source.to_string(),
        problem,
    })?;
    Ok((raw, jwks))
}

impl KubernetesAttestor {
    /// Loads the JWKS once; fails if it cannot be read, fetched or parsed.
    pub async fn new(
        config: KubernetesConfig,
        trust_domain: TrustDomain,
    ) -> Result<Arc<Self>, JwksError> {
        let (raw, jwks) = load(&config.jwks).await?;
        let attestor = Arc::new(Self {
            config,
            trust_domain,
            keys: Mutex::new((ContentWatch::seen(ContentDigest::of(&[&raw])), jwks)),
            refresh: Arc::new(Notify::new()),
            refresher: OnceLock::new(),
        });
        let every = match attestor.config.jwks {
            JwksSource::File(_) => FILE_RECHECK,
            JwksSource::Url(_) => URL_REFRESH,
        };
        let task = tokio::spawn(refresh_loop(
            Arc::downgrade(&attestor),
            attestor.refresh.clone(),
            every,
        ));
        let _ = attestor.refresher.set(task.abort_handle());
        Ok(attestor)
    }

    /// Takes what the source holds now: keys that parse replace the ones in force when the
    /// content changed; content that does not parse is reported once, and changes nothing.
    fn take(&self, raw: &[u8]) {
        let Ok(mut guard) = self.keys.lock() else {
            return;
        };
        if !guard.0.changed(ContentDigest::of(&[raw])) {
            return;
        }
        match Jwks::parse(raw) {
            Ok(jwks) => {
                tracing::info!(source = %self.config.jwks, "Kubernetes JWKS reloaded");
                guard.1 = jwks;
            }
            Err(e) => {
                tracing::error!(source = %self.config.jwks, error = %e, "JWKS reload failed; keeping the previous keys");
            }
        }
    }

    fn current_jwks(&self) -> Result<Jwks, KubeError> {
        let guard = self
            .keys
            .lock()
            .map_err(|_| KubeError::Jwks(JwksError::Poisoned))?;
        Ok(guard.1.clone())
    }

    /// Verifies `token` at `now` and returns the ID it proves.
    pub fn attest(&self, token: &str, now: i64) -> Result<SpiffeId, KubeError> {
        let jwks = self.current_jwks()?;
        let who = match kube_jwt::verify(
            token,
            &jwks,
            &self.config.issuer,
            &self.config.audience,
            now,
        ) {
            Ok(who) => who,
            Err(JwtError::UnknownKey) => {
                // The API server may have rotated its keys: fetch sooner than scheduled.
                self.refresh.notify_one();
                return Err(KubeError::Token(JwtError::UnknownKey));
            }
            Err(e) => return Err(KubeError::Token(e)),
        };
        render_template(
            &self.config.id_template,
            &self.trust_domain,
            &who.namespace,
            &who.service_account,
        )
        .map_err(KubeError::Id)
    }
}

/// Reads the key set again every [`FILE_RECHECK`] (a file) or [`URL_REFRESH`] (a URL), and
/// sooner when a token names an unknown key, never more often than [`MIN_INTERVAL`]. It lives
/// as long as its attestor (which it holds only weakly, and which aborts it when dropped);
/// requests only ever read the keys in memory.
async fn refresh_loop(weak: Weak<KubernetesAttestor>, refresh: Arc<Notify>, every: Duration) {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = refresh.notified() => {}
        }
        tokio::time::sleep(MIN_INTERVAL.saturating_sub(last.elapsed())).await;
        last = Instant::now();
        let Some(a) = weak.upgrade() else { return };
        // Only the bytes: `take` parses them, and only when they changed.
        match read_source(&a.config.jwks).await {
            Ok(raw) => a.take(&raw),
            Err(e) => {
                tracing::error!(source = %a.config.jwks, error = %e, "JWKS unreadable; keeping the previous keys")
            }
        }
    }
}
