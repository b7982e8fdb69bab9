//! The CA in memory: its generations and how they sign (issuer, csr), its JWT keys (jwt_key,
//! jwt_svid), the rules of a rotation (rotation) and its steps in memory (material), the
//! records the state keeps (records), and the checks attestation makes (tokens, kube_jwt) and
//! foreign bundles pass (foreign_bundle). No I/O but what a caller hands in.

pub mod csr;
pub mod error;
pub mod foreign_bundle;
pub mod generation;
pub mod id_template;
pub mod issuer;
pub mod jwt_key;
pub mod jwt_svid;
pub mod kube_jwt;
pub mod layout;
pub mod material;
pub mod records;
pub mod rotation;
pub mod tokens;

#[cfg(test)]
mod kube_jwt_tests;
