//! Attestors: turning a proof (join token or Kubernetes token) into the SPIFFE ID to certify.
//! The ID always comes from the proof, never from the CSR.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use ward_identity::{SpiffeId, TrustDomain};
use ward_tls::files::{ContentDigest, ContentWatch};

use crate::authority::kube_jwt::{self, Jwks, JwtError};
use crate::config::{JwksSource, KubernetesConfig};
use crate::server::jwks_fetch::{self, JwksError};

/// Whether `s` is an RFC 1123 DNS label: 1-63 of `a-z 0-9 -`, starting and ending with a
/// letter or digit (what Kubernetes namespace names are).
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why a Kubernetes identity could not become a SPIFFE ID.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdTemplateError {
    /// A claim is not a DNS label.
    #[error("{what} {value:?} is not a DNS label (1-63 of a-z 0-9 -)")]
    NotDnsLabel {
        /// `namespace` or `service account`.
        what: &'static str,
        /// The claim.
        value: String,
    },
    /// The rendered text is not a SPIFFE ID.
    #[error("{text:?} is not a valid SPIFFE ID: {source}")]
    InvalidId {
        /// What the template rendered.
        text: String,
        /// Which rule it breaks.
        source: ward_identity::IdError,
    },
    /// The ID is outside the trust domain, or has no path.
    #[error("{id} must be a workload ID in trust domain {td}")]
    NotWorkload {
        /// The rendered ID.
        id: SpiffeId,
        /// The CA's trust domain.
        td: TrustDomain,
    },
}

/// Renders an ID template for a namespace and service account, each a DNS label (checked
/// before rendering, so no claim can add a segment or a character the template did not plan).
pub fn render_template(
    template: &str,
    td: &TrustDomain,
    namespace: &str,
    sa: &str,
) -> Result<SpiffeId, IdTemplateError> {
    for (what, value) in [("namespace", namespace), ("service account", sa)] {
        if !is_dns_label(value) {
            return Err(IdTemplateError::NotDnsLabel {
                what,
                value: value.to_owned(),
            });
        }
    }
    let text = template
        .replace("{trust_domain}", td.as_str())
        .replace("{namespace}", namespace)
        .replace("{service_account}", sa);
    let id = SpiffeId::parse(&text).map_err(|source| IdTemplateError::InvalidId {
        text: text.clone(),
        source,
    })?;
    if !id.is_member_of(td) || !id.is_workload() {
        return Err(IdTemplateError::NotWorkload { id, td: td.clone() });
    }
    Ok(id)
}

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
