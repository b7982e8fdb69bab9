//! Why the Workload API endpoint could not start.

use std::path::PathBuf;

/// A failure to set up the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// Another server answers on the path.
    #[error("{}: a running server already listens on this socket; refusing to take it over", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The path holds something that is not a socket.
    #[error("{}: exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
