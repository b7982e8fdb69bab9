//! ward-identity: the names ward trusts and the shape of the certificates that carry them.
//!
//! [`SpiffeId`] and [`TrustDomain`] parse per the SPIFFE-ID spec and refuse anything else;
//! [`IdPattern`] is the exact-or-`/*` form operators write; [`SvidProfile`] checks that a DER
//! certificate is a well-formed X509-SVID leaf. Pure data and parsing: no I/O, no async, no TLS,
//! so every other ward crate can depend on it and it can be fuzzed on its own.

#![forbid(unsafe_code)]

mod der;
mod error;
mod pattern;
mod spiffe_id;
mod svid;

pub use error::{IdError, ProfileError};
pub use pattern::IdPattern;
pub use spiffe_id::{
    SpiffeId, TrustDomain, MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SCHEME_PREFIX,
};
pub use svid::{serial_hex, unix_now, SvidLeaf, SvidProfile, NOT_BEFORE_BACKDATE_SECS};

#[cfg(test)]
mod tests;
