//! What the state database can fail at, for every engine (the error the engines return and
//! [`super::Store`] passes on), and what a probe of it finds.

use thiserror::Error;

/// State failures. Client mistakes are never reported through this type.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The database failed (I/O, disk full, read-only file system, corruption...). The
    /// cause is the database engine's; its type is not part of this API.
    #[error("state database: {0}")]
    Db(Box<dyn std::error::Error + Send + Sync>),
    /// The database was written by a newer ward-ca.
    #[error("state database has schema version {found}, newer than this ward-ca understands ({known}); upgrade ward-ca")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this binary knows.
        known: i64,
    },
    /// A batch could not be committed; nothing in it was recorded.
    #[error("state database refused the write: {0}")]
    Commit(String),
    /// The state directory or database cannot be written (a read-only mount, say).
    #[error("{0}")]
    Unwritable(String),
    /// The database cannot be reached or did not answer in time; nothing was recorded, and
    /// the next operation tries again.
    #[error("state database unavailable: {0}")]
    Unavailable(String),
    /// The writer thread is gone (the daemon is shutting down).
    #[error("state writer stopped")]
    WriterGone,
    /// A join token was already used, revoked or expired by the time it was consumed.
    #[error("join token is no longer usable")]
    TokenUnusable,
    /// An import target already holds records (nothing was written).
    #[error("the target state is not empty ({0}); copy only into a new database")]
    NotEmpty(String),
    /// Something that must exist does not.
    #[error("{0}")]
    NotFound(String),
    /// Another writer changed the record between this one's read and its write (nothing
    /// was written; read again and retry).
    #[error("{0}")]
    Conflict(String),
}

impl StateError {
    /// The same failure for each of several waiters (a batch's callers), without wrapping
    /// its text in a second prefix.
    pub fn for_waiter(&self) -> StateError {
        match self {
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Commit(m) => Self::Commit(m.clone()),
            Self::Db(e) => Self::Db(Box::new(std::io::Error::other(e.to_string()))),
            other => Self::Commit(other.to_string()),
        }
    }
}

/// What `ward-ca check --connect` learns of a state without changing it.
#[derive(Debug)]
pub struct Probe {
    /// Which database, where (`SQLite /var/lib/ward/state.db`, `postgres://ward@db:5432/ward`).
    pub engine: String,
    /// The schema version it holds (0: none yet).
    pub schema: i64,
    /// The schema version this ward-ca writes.
    pub known: i64,
}
