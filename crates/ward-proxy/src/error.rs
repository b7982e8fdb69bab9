//! Typed errors of the proxy library.

use std::net::SocketAddr;

use thiserror::Error;
use ward_yaml::YamlError;

/// Why the proxy could not start (or a reload could not apply).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The config or policy file is invalid (file:line:column in the message).
    #[error(transparent)]
    File(#[from] YamlError),
    /// A listener could not bind.
    #[error("listener {name:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// The listener's name (or `admin`).
        name: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The identity could not be loaded or did not validate.
    #[error("identity: {0}")]
    Identity(#[from] crate::svid_source::IdentityError),
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] ward_tls::TlsError),
    /// The connection worker threads could not be started.
    #[error("cannot start {count} connection worker threads: {source}")]
    Workers {
        /// How many were asked for.
        count: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Workload API socket could not be set up.
    #[error("workload_api: {0}")]
    WorkloadApi(#[from] ward_workload::WorkloadError),
}
