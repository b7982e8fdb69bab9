//! What `SIGHUP` can change in a running CA, and the reload itself.
//!
//! [`Settings`] holds the parts of the config a request reads at the time it is served
//! (admins, request limits, lifetimes, which attestors are on, the Kubernetes attestor with
//! its keys), behind one lock so a request sees one consistent version. [`reload`] reads the
//! config file again and validates all of it first: a file that does not load, or a
//! Kubernetes attestor whose keys cannot be read, changes nothing. Everything else (the trust
//! domain, where keys and state live, addresses, DNS names, JWT-SVIDs, OIDC, federation, the
//! per-IP connection cap, the bundle refresh hint) is fixed at start; a change to it is named
//! in the answer as needing a restart and left as it was.

use std::path::Path;
use std::sync::{Arc, RwLock};

use ward_identity::SpiffeId;

use super::CaService;
use crate::config::limits::CaLimits;
use crate::config::{CaConfig, TtlPolicy, CA_ID_PATH};
use crate::server::attest::KubernetesAttestor;

/// The reloadable part of the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// IDs allowed to call `/v1/revoke`.
    pub admins: Vec<SpiffeId>,
    /// Request limits (`max_connections_per_ip` is the start-up value, fixed).
    pub limits: CaLimits,
    /// Lifetimes.
    pub ttl: TtlPolicy,
    /// Join tokens accepted.
    pub join_token: bool,
    /// The Kubernetes attestor, if configured.
    pub kube: Option<Arc<KubernetesAttestor>>,
}

impl Settings {
    /// The settings `config` describes, with the attestor built from it.
    pub fn of(config: &CaConfig, kube: Option<Arc<KubernetesAttestor>>) -> Self {
        Self {
            admins: config.admins.clone(),
            limits: config.limits,
            ttl: config.ttl,
            join_token: config.join_token,
            kube,
        }
    }

    /// Whether `id` is never issued through the API: the CA's own ID or an admin ID (whoever
    /// holds the CA's ID can pose as the CA to sidecars and collect their tokens).
    pub fn is_reserved(&self, config: &CaConfig, id: &SpiffeId) -> bool {
        self.admins.contains(id)
            || SpiffeId::from_parts(&config.trust_domain, CA_ID_PATH).is_ok_and(|ca| &ca == id)
    }
}

/// The current settings, swapped whole by a reload.
#[derive(Debug)]
pub struct SettingsCell(RwLock<Arc<Settings>>);

impl SettingsCell {
    /// Starts with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self(RwLock::new(Arc::new(settings)))
    }

    /// The settings in force.
    pub fn get(&self) -> Arc<Settings> {
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, settings: Settings) {
        match self.0.write() {
            Ok(mut s) => *s = Arc::new(settings),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(settings),
        }
    }
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Reloadable settings whose value changed, now in force.
    pub applied: Vec<&'static str>,
    /// Settings that changed in the file but only take effect after a restart.
    pub need_restart: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error(transparent)]
    Config(#[from] ward_yaml::YamlError),
    /// The Kubernetes attestor's keys cannot be loaded.
    #[error("attestors.kubernetes: {0}")]
    Jwks(#[from] crate::server::jwks_fetch::JwksError),
}

fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// Reads `path` again and applies what can be applied; see the module docs.
pub async fn reload(ca: &CaService, path: &Path) -> Result<Reloaded, ReloadError> {
    let new = CaConfig::load(path)?;
    let old = &ca.config;
    let current = ca.settings.get();
    let kube_changed = differs(&new.kubernetes, &old.kubernetes);
    // Rebuilt (keys read again) on every reload, so a rotated jwks_file is picked up too.
    let kube = match &new.kubernetes {
        Some(k) => Some(KubernetesAttestor::new(k.clone(), old.trust_domain.clone()).await?),
        None => None,
    };
    let mut done = Reloaded::default();
    let fixed: [(&'static str, bool); 12] = [
        ("trust_domain", new.trust_domain != old.trust_domain),
        ("ca_dir / state keys", differs(&new.keys, &old.keys)),
        ("listen", new.listen != old.listen),
        ("ops", new.ops != old.ops),
        ("state", differs(&new.state, &old.state)),
        ("dns_names", new.dns_names != old.dns_names),
        (
            "bundle_refresh_hint",
            new.bundle_refresh_hint != old.bundle_refresh_hint,
        ),
        ("jwt_svid", differs(&new.jwt_svid, &old.jwt_svid)),
        ("oidc", differs(&new.oidc, &old.oidc)),
        ("federation", differs(&new.federation, &old.federation)),
        (
            "limits.max_connections_per_ip",
            new.limits.max_connections_per_ip != old.limits.max_connections_per_ip,
        ),
        (
            "limits.idle_timeout",
            new.limits.idle_timeout != current.limits.idle_timeout,
        ),
    ];
    done.need_restart = fixed.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
    let mut limits = new.limits;
    // Fixed at start: the accept gate and open connections were built with these.
    limits.max_connections_per_ip = old.limits.max_connections_per_ip;
    limits.idle_timeout = current.limits.idle_timeout;
    let changed: [(&'static str, bool); 5] = [
        ("admins", new.admins != current.admins),
        ("limits", differs(&limits, &current.limits)),
        ("ttl", differs(&new.ttl, &current.ttl)),
        ("attestors.join_token", new.join_token != current.join_token),
        ("attestors.kubernetes", kube_changed),
    ];
    done.applied = changed
        .iter()
        .filter(|(_, c)| *c)
        .map(|(n, _)| *n)
        .collect();
    ca.limiter.set_rate(limits.enroll_per_ip_per_sec);
    ca.renew_limiter.set_rate(limits.renew_per_id_per_minute);
    ca.jwt_limiter.set_rate(limits.jwt_per_id_per_sec);
    ca.settings.set(Settings {
        admins: new.admins,
        limits,
        ttl: new.ttl,
        join_token: new.join_token,
        kube,
    });
    Ok(done)
}
