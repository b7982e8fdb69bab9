//! Typed errors for ward-tls, one enum per concern, nested under [`TlsError`].

use std::path::PathBuf;

use thiserror::Error;
use ward_identity::{ProfileError, SpiffeId};

/// Anything ward-tls can fail at.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or decoding PEM material.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// Writing or checking files on disk.
    #[error(transparent)]
    File(#[from] FileError),
    /// A certificate was refused.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A candidate identity was refused by the certificate store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// rustls refused a configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// PEM files that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM text is malformed.
    #[error("{what}: malformed PEM: {detail}")]
    Malformed {
        /// Where the PEM came from.
        what: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// No certificate in a file that must hold at least one.
    #[error("{0}: no CERTIFICATE block found")]
    NoCertificates(String),
    /// No usable private key.
    #[error("{0}: no private key block found")]
    NoKey(String),
    /// The key file is readable by group or others.
    #[error(
        "{path}: private key is readable by group/other (mode {mode:04o}); run `chmod 600 {path}`",
        path = path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is not one ward can sign with (ward uses ECDSA P-256).
    #[error("{what}: unsupported private key: {detail}")]
    UnsupportedKey {
        /// Where the key came from.
        what: String,
        /// Why it was refused.
        detail: String,
    },
}

/// Failures writing files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FileError {
    /// An I/O step of an atomic write failed; the destination is unchanged.
    #[error("{path}: {step}: {source}")]
    Io {
        /// The destination file.
        path: PathBuf,
        /// Which step failed (create temp, write, fsync, rename).
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a peer (or our own) certificate chain was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The leaf is not a valid X509-SVID.
    #[error("peer certificate is not a valid SVID: {0}")]
    Profile(#[from] ProfileError),
    /// We hold no bundle for the leaf's trust domain.
    #[error("no trust bundle for trust domain {0:?}")]
    UnknownTrustDomain(String),
    /// Chain validation failed.
    #[error("certificate chain for {id} rejected: {}", chain_problem(error))]
    Chain {
        /// The ID the leaf claimed.
        id: SpiffeId,
        /// webpki's verdict.
        error: webpki::Error,
    },
    /// The chain reaches a trusted root, but through an issuer the bundle no longer allows
    /// (retired by a rotation).
    #[error("certificate for {id} is signed by an issuer its CA no longer allows (key SHA-256 {issuer})")]
    RetiredIssuer {
        /// The ID the leaf claimed.
        id: SpiffeId,
        /// Hex SHA-256 of the signing CA certificate's SubjectPublicKeyInfo.
        issuer: String,
    },
    /// The certificate was revoked by the CA.
    #[error("certificate {serial} for {id} has been revoked")]
    Revoked {
        /// The revoked ID.
        id: SpiffeId,
        /// The certificate's serial.
        serial: String,
    },
    /// The peer is valid but not who we meant to talk to.
    #[error("peer is {got}, expected {expected}")]
    UnexpectedPeer {
        /// The verified peer ID.
        got: SpiffeId,
        /// The patterns we would have accepted.
        expected: String,
    },
}

/// Operator words for the webpki errors that actually happen; the rest as webpki names them.
fn chain_problem(error: &webpki::Error) -> String {
    match error {
        webpki::Error::CertExpired { .. } => "certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "certificate is not valid yet".into(),
        webpki::Error::UnknownIssuer => "not issued by a root in the trust bundle".into(),
        webpki::Error::InvalidSignatureForPublicKey => "signature does not verify".into(),
        other => format!("{other:?}"),
    }
}

impl VerifyError {
    /// A stable code for counting refusals by cause.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Profile(p) => p.reason(),
            Self::UnknownTrustDomain(_) => "unknown_trust_domain",
            Self::Chain { error, .. } => match error {
                webpki::Error::CertExpired { .. } => "expired",
                webpki::Error::CertNotValidYet { .. } => "not_yet_valid",
                webpki::Error::UnknownIssuer => "unknown_issuer",
                webpki::Error::InvalidSignatureForPublicKey => "bad_signature",
                webpki::Error::CaUsedAsEndEntity => "ca_leaf",
                _ => "chain_invalid",
            },
            Self::RetiredIssuer { .. } => "retired_issuer",
            Self::Revoked { .. } => "revoked",
            Self::UnexpectedPeer { .. } => "unexpected_peer",
        }
    }
}

/// Why the certificate store refused to publish a candidate identity.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The chain was empty.
    #[error("certificate chain is empty")]
    EmptyChain,
    /// The private key does not belong to the leaf certificate.
    #[error("private key does not match the certificate's public key")]
    KeyMismatch,
    /// The key could not be loaded by the crypto provider.
    #[error("private key unusable: {0}")]
    BadKey(String),
    /// The identity is from another trust domain than the store serves.
    #[error("certificate is for {got}, but this store serves trust domain {want}")]
    WrongTrustDomain {
        /// The certificate's ID.
        got: SpiffeId,
        /// The configured trust domain.
        want: String,
    },
    /// The chain does not verify against the bundle or is outside its validity period.
    #[error("own certificate refused: {0}")]
    Invalid(#[from] VerifyError),
}
