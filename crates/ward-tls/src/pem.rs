//! PEM in and out: certificate chains, bundles and private keys.
//!
//! Key files are checked for permissions before they are read. Nothing here logs or formats
//! key bytes; errors name the file and the problem only.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::PemError;
use crate::files::check_key_permissions;

/// Parses every CERTIFICATE block in `pem`; at least one is required. `what` names the source
/// in errors.
pub fn certs_from_pem(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Malformed {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificates(what.to_owned()));
    }
    Ok(certs)
}

/// Reads a PEM file of one or more certificates.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    certs_from_pem(&path.display().to_string(), &bytes)
}

/// Parses the first private key block in `pem`.
pub fn key_from_pem(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::NoKey(what.to_owned()),
        other => PemError::Malformed {
            what: what.to_owned(),
            detail: other.to_string(),
        },
    })
}

/// Reads a private key file after checking it is not readable by group or others.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    check_key_permissions(path)?;
    let bytes = std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    key_from_pem(&path.display().to_string(), &bytes)
}

/// Encodes DER certificates as concatenated PEM blocks.
pub fn certs_to_pem<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|c| encode_block("CERTIFICATE", c.as_ref()))
        .collect()
}

/// Encodes one PEM block with 64-column lines and `\n` line endings.
pub fn encode_block(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}
