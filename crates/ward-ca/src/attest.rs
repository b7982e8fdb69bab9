//! Attestors: turning a proof (join token or Kubernetes token) into the SPIFFE ID to certify.
//! The ID always comes from the proof, never from the CSR.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ward_identity::{SpiffeId, TrustDomain};

use crate::config::KubernetesConfig;
use crate::jwt::{self, Jwks, JwtError};

/// Renders an ID template for a namespace and service account.
pub fn render_template(
    template: &str,
    td: &TrustDomain,
    namespace: &str,
    sa: &str,
) -> Result<SpiffeId, String> {
    let text = template
        .replace("{trust_domain}", td.as_str())
        .replace("{namespace}", namespace)
        .replace("{service_account}", sa);
    let id =
        SpiffeId::parse(&text).map_err(|e| format!("{text:?} is not a valid SPIFFE ID: {e}"))?;
    if !id.is_member_of(td) || !id.is_workload() {
        return Err(format!("{id} must be a workload ID in trust domain {td}"));
    }
    Ok(id)
}

/// How often the JWKS file is checked for new keys.
const JWKS_RECHECK: Duration = Duration::from_secs(5);

/// Verifies Kubernetes projected service-account tokens.
#[derive(Debug)]
pub struct KubernetesAttestor {
    config: KubernetesConfig,
    trust_domain: TrustDomain,
    jwks: Mutex<(Instant, Vec<u8>, Jwks)>,
}

/// Why a Kubernetes token was refused.
#[derive(Debug)]
pub enum KubeError {
    /// The token itself.
    Token(JwtError),
    /// The resulting ID is not acceptable (bad characters in a name, say).
    Id(String),
    /// The JWKS cannot be read (a server-side problem).
    Jwks(String),
}

impl KubernetesAttestor {
    /// Loads the JWKS; fails if it cannot be read or parsed.
    pub fn new(config: KubernetesConfig, trust_domain: TrustDomain) -> Result<Self, String> {
        let (raw, jwks) = read_jwks(&config.jwks_file)?;
        Ok(Self {
            config,
            trust_domain,
            jwks: Mutex::new((Instant::now(), raw, jwks)),
        })
    }

    fn current_jwks(&self) -> Result<Jwks, KubeError> {
        let mut guard = self
            .jwks
            .lock()
            .map_err(|_| KubeError::Jwks("JWKS lock poisoned".into()))?;
        if guard.0.elapsed() >= JWKS_RECHECK {
            guard.0 = Instant::now();
            match read_jwks(&self.config.jwks_file) {
                Ok((raw, jwks)) if raw != guard.1 => {
                    tracing::info!(file = %self.config.jwks_file.display(), "Kubernetes JWKS reloaded");
                    guard.1 = raw;
                    guard.2 = jwks;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "JWKS reload failed; keeping the previous keys")
                }
            }
        }
        Ok(guard.2.clone())
    }

    /// Verifies `token` at `now` and returns the ID it proves.
    pub fn attest(&self, token: &str, now: i64) -> Result<SpiffeId, KubeError> {
        let jwks = self.current_jwks()?;
        let who = jwt::verify(
            token,
            &jwks,
            &self.config.issuer,
            &self.config.audience,
            now,
        )
        .map_err(KubeError::Token)?;
        render_template(
            &self.config.id_template,
            &self.trust_domain,
            &who.namespace,
            &who.service_account,
        )
        .map_err(KubeError::Id)
    }
}

fn read_jwks(path: &PathBuf) -> Result<(Vec<u8>, Jwks), String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let jwks = Jwks::parse(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((raw, jwks))
}
