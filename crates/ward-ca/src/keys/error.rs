//! What keeping the CA's keys can fail at: the CA material itself, the state database that
//! holds it for replicas, or the key-encryption key that seals it there. Each wraps the lower
//! layer's error unchanged.

use thiserror::Error;

use crate::authority::error::CaError;
use crate::keys::kek::KekError;
use crate::state::StateError;

/// Why the CA's keys could not be read, stored or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The CA material is inconsistent or unusable.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The key-encryption key, or a key sealed under it, is unusable.
    #[error(transparent)]
    Kek(#[from] KekError),
}
