//! `IdPattern`: an exact SPIFFE ID, or every ID under a path (`spiffe://td/ns/batch/*`).
//!
//! Patterns are what operators write in allow-lists and what a client expects of a server.
//! They are parsed once into a typed value; a malformed pattern is an error, never a pattern
//! that silently matches nothing. `spiffe://td/*` is the whole trust domain (every workload ID,
//! not the trust domain's own ID); `spiffe://td/a/*` matches `spiffe://td/a/b` but not
//! `spiffe://td/a` or `spiffe://td/ab`.

use std::fmt;
use std::str::FromStr;

use crate::error::IdError;
use crate::spiffe_id::SpiffeId;

/// A parsed SPIFFE ID pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum IdPattern {
    /// Matches exactly this ID.
    Exact(SpiffeId),
    /// Matches every ID strictly under this one (the pattern was `<id>/*`).
    Under(SpiffeId),
}

impl IdPattern {
    /// Parses `spiffe://td/path` or `spiffe://td/path/*`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_suffix("/*") {
            Some(prefix) if !prefix.contains('*') => Ok(Self::Under(SpiffeId::parse(prefix)?)),
            _ if s.contains('*') => Err(IdError::Wildcard),
            _ => Ok(Self::Exact(SpiffeId::parse(s)?)),
        }
    }

    /// True when `id` is matched by this pattern.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(want) => want == id,
            Self::Under(prefix) => id
                .as_str()
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }

    /// The ID the pattern is anchored on (the exact ID, or the prefix).
    pub fn anchor(&self) -> &SpiffeId {
        match self {
            Self::Exact(id) | Self::Under(id) => id,
        }
    }
}

impl FromStr for IdPattern {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(id) => write!(f, "{id}"),
            Self::Under(id) => write!(f, "{id}/*"),
        }
    }
}

impl fmt::Debug for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdPattern({self})")
    }
}
