//! ward-ca: the certificate authority that issues workload SVIDs, in layers, each using only
//! the ones below it (docs/architecture.md; `tests/layers.rs` keeps it so):
//!
//! - [`authority`]: the CA in memory (generations, issuance, JWT keys, rotation rules and
//!   steps, records, attestation checks), with no I/O;
//! - [`config`]: `ca.yaml` as typed values;
//! - [`state`]: the records database (SQLite or PostgreSQL);
//! - [`keys`]: where the CA's own keys persist (a directory, or sealed in the database);
//! - [`server`]: the daemon (`ward-ca serve`);
//! - [`cli`]: the `ward-ca` command line over all of it.

#![forbid(unsafe_code)]

pub mod authority;
pub mod cli;
pub mod config;
pub mod keys;
pub mod server;
pub mod state;

pub use authority::error::{CaError, CsrError};
pub use authority::issuer::{IssuedSvid, Issuer};

#[cfg(test)]
mod tests;
