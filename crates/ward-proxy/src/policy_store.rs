//! The policy in force: loaded from its file, validated against this proxy's listeners, and
//! published to connections through a watch channel so a change reaches them at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use ward_policy::Policy;
use ward_yaml::YamlError;

/// A policy with where and when it came from.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// The compiled policy.
    pub policy: Policy,
    /// Hex SHA-256 of the file's bytes: the policy's version.
    pub hash: String,
    /// When it was loaded, Unix seconds.
    pub loaded_at: i64,
    /// The file.
    pub path: PathBuf,
}

pub(crate) use ward_tls::files::sha256_hex;

/// Compiles policy `bytes` read from `path` for a proxy with these inbound `listeners`.
pub fn compile(
    path: &Path,
    text: &str,
    listeners: &[ward_policy::Listener<'_>],
) -> Result<LoadedPolicy, YamlError> {
    let name = path.display().to_string();
    let policy = ward_policy::compile(&name, text, Some(listeners))?;
    Ok(LoadedPolicy {
        policy,
        hash: sha256_hex(text.as_bytes()),
        loaded_at: ward_identity::unix_now(),
        path: path.to_path_buf(),
    })
}

/// The single writer of the policy in force.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    tx: Arc<watch::Sender<Arc<LoadedPolicy>>>,
}

impl PolicyStore {
    /// A store starting with `policy`.
    pub fn new(policy: LoadedPolicy) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Arc::new(policy))),
        }
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<LoadedPolicy> {
        self.tx.borrow().clone()
    }

    /// Installs a new policy; connections watching are woken to re-check their peer.
    pub fn replace(&self, policy: LoadedPolicy) {
        self.tx.send_replace(Arc::new(policy));
    }

    /// A receiver woken on every replace.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LoadedPolicy>> {
        self.tx.subscribe()
    }
}
