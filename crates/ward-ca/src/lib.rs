//! ward-ca: the certificate authority that issues workload SVIDs.
//!
//! Today it is the offline half: [`ca_dir`] creates and loads a CA directory (root, issuer,
//! bundle), [`issuer`] signs CSRs to ward's leaf profile, [`csr`] takes nothing from a CSR but
//! its verified P-256 public key, and [`cli`] is the `ward-ca` command line over them. The
//! enrollment daemon (`ward-ca serve`) is built on the same issuer.

#![forbid(unsafe_code)]

pub mod attest;
pub mod ca_dir;
pub mod cli;
pub mod config;
pub mod csr;
pub mod error;
pub mod issuer;
pub mod jwks_fetch;
pub mod jwt;
pub mod rotate;
pub mod server;
pub mod state;
pub mod tokens;

pub use error::{CaError, CsrError};
pub use issuer::{IssuedSvid, Issuer};

#[cfg(test)]
mod jwt_tests;
#[cfg(test)]
mod tests;
