//! The errors of the CA in memory (and of the CA directory, whose failures are files and PEM):
//! every message names the file, value or rule at fault so the CLI can print it as one line.
//! The layers above wrap these (`keys::KeysError`, `server::ServeError`, `cli::Error`), each
//! transparently, so the line an operator reads is the same wherever it surfaces.

use std::path::PathBuf;

use thiserror::Error;
use ward_identity::{ProfileError, SpiffeId};
use ward_tls::{FileError, PemError};

/// Anything the CA can fail at.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    /// `init` found an existing CA and `--force` was not given.
    #[error("a CA already exists in {dir} ({file} is present); pass --force to replace it", dir = dir.display(), file = file.display())]
    Exists {
        /// The CA directory.
        dir: PathBuf,
        /// The first CA file found.
        file: PathBuf,
    },
    /// A directory or file operation failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a file atomically failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A PEM file could not be used.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The CA directory holds material that is inconsistent or unusable.
    #[error("{path}: {problem}", path = path.display())]
    BadCa {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Key or certificate generation failed (the message is the crypto library's).
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The requested lifetime is outside the allowed range.
    #[error("ttl {ttl} is outside the allowed range {min} to {max}")]
    Ttl {
        /// What was asked for.
        ttl: String,
        /// The shortest allowed.
        min: String,
        /// The longest allowed.
        max: String,
    },
    /// The requested ID is not in this CA's trust domain.
    #[error("{id} is not in this CA's trust domain {trust_domain}")]
    ForeignId {
        /// The requested ID.
        id: SpiffeId,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// The requested ID has no path, so it cannot name a workload.
    #[error("{0} has no path; a workload ID looks like spiffe://<trust-domain>/<path>")]
    NotWorkload(SpiffeId),
    /// A requested DNS SAN is not a valid, non-wildcard host name.
    #[error("{0:?} is not a valid DNS name (wildcards are not issued)")]
    InvalidDnsName(String),
    /// A rotation step is out of order or premature (the message says what to do).
    #[error(transparent)]
    Rotation(#[from] crate::authority::rotation::RotationError),
    /// The issuing certificate has expired or is not yet valid.
    #[error("the issuing certificate is not valid now (valid {not_before} to {not_after}); rotate the CA")]
    IssuerNotValid {
        /// Start of the issuer's validity (RFC 3339).
        not_before: String,
        /// End of the issuer's validity (RFC 3339).
        not_after: String,
    },
    /// The freshly issued certificate failed ward's own profile check (a bug guard).
    #[error("issued certificate failed the SVID profile self-check: {0}")]
    SelfCheck(#[from] ProfileError),
}

/// Why a certificate signing request was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Neither PEM nor DER, or a structure that does not parse.
    #[error("CSR is malformed: {0}")]
    Malformed(String),
    /// The CSR's self-signature does not verify with its own key.
    #[error("CSR signature does not verify (the requester does not hold the key)")]
    BadSignature,
    /// The key is not ECDSA P-256.
    #[error("CSR key must be ECDSA P-256: {0}")]
    UnsupportedKey(String),
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e.to_string())
    }
}
