//! The foreign bundles in force while the daemon runs, by trust domain, shared by the task
//! that follows each domain's endpoint and the handlers that serve `/v1/bundle`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ward_identity::TrustDomain;

use crate::authority::foreign_bundle::ForeignBundle;

/// The foreign bundles in force, by trust domain, with a version that moves on every change
/// (so the `/v1/bundle` document is rebuilt).
#[derive(Debug, Default)]
pub struct Foreign {
    inner: RwLock<(u64, BTreeMap<String, Arc<ForeignBundle>>)>,
}

impl Foreign {
    /// The version alone (what a cached document is checked against).
    pub fn version(&self) -> u64 {
        self.inner.read().map(|g| g.0).unwrap_or_default()
    }

    /// The version and every bundle, by trust domain.
    pub fn snapshot(&self) -> (u64, Vec<Arc<ForeignBundle>>) {
        self.inner
            .read()
            .map(|g| (g.0, g.1.values().cloned().collect()))
            .unwrap_or_default()
    }

    /// The bundle of `td`, if held.
    pub fn get(&self, td: &TrustDomain) -> Option<Arc<ForeignBundle>> {
        self.inner.read().ok()?.1.get(td.as_str()).cloned()
    }

    /// Puts (or replaces) a bundle.
    pub fn set(&self, b: ForeignBundle) {
        if let Ok(mut g) = self.inner.write() {
            g.0 += 1;
            g.1.insert(b.trust_domain.to_string(), Arc::new(b));
        }
    }
}
