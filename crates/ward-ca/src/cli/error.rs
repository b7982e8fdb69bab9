//! The one error `ward-ca` prints: whatever layer it came from, its message unchanged, or a
//! command-line value or a process set-up that failed.

use thiserror::Error;

use crate::authority::error::CaError;
use crate::keys::kek::KekError;
use crate::keys::KeysError;
use crate::server::ServeError;
use crate::state::StateError;

/// Anything a `ward-ca` command can fail at.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The CA material.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Where the CA's keys are kept.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The key-encryption key, or a key sealed under it, is unusable.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The daemon could not start.
    #[error(transparent)]
    Serve(Box<ServeError>),
    /// The daemon config is invalid (file:line:column in the message).
    #[error(transparent)]
    Config(#[from] ward_yaml::YamlError),
    /// A command-line value is invalid.
    #[error("{flag} {value:?}: {problem}")]
    Argument {
        /// The flag, e.g. `--id`.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The process could not set up its runtime or signal handlers.
    #[error("{what}: {source}")]
    Runtime {
        /// What was being set up.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<ServeError> for Error {
    fn from(e: ServeError) -> Self {
        Self::Serve(Box::new(e))
    }
}

impl From<crate::authority::rotation::RotationError> for Error {
    fn from(e: crate::authority::rotation::RotationError) -> Self {
        Self::Ca(e.into())
    }
}

impl From<crate::authority::error::CsrError> for Error {
    fn from(e: crate::authority::error::CsrError) -> Self {
        Self::Ca(e.into())
    }
}
