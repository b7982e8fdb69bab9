//! ward-ca: the certificate authority that issues workload SVIDs.
//!
//! [`ca_dir`] creates and loads a CA directory (root, issuer, bundle) and [`rotate`] moves it
//! to a new generation; [`issuer`] signs CSRs to ward's leaf profile and [`csr`] takes nothing
//! from a CSR but its verified P-256 public key. The enrollment daemon ([`server`], `ward-ca
//! serve`) signs with the same issuer, attests workloads ([`attest`], [`tokens`], [`jwt`]) and
//! records what it issues in [`state`]; [`cli`] is the `ward-ca` command line over all of it.

#![forbid(unsafe_code)]

mod attest;
pub mod ca_dir;
pub mod ca_store;
pub mod cli;
pub mod config;
pub mod csr;
pub mod error;
pub mod federation;
pub mod issuer;
mod jwks_fetch;
pub mod jwt;
pub mod jwt_key;
pub mod jwt_svid;
pub mod kek;
pub mod limits;
pub mod material;
pub mod rotate;
pub mod rotation;
pub mod server;
pub mod state;
pub mod tokens;

pub use error::{CaError, CsrError};
pub use issuer::{IssuedSvid, Issuer};

#[cfg(test)]
mod jwt_tests;
#[cfg(test)]
mod tests;
