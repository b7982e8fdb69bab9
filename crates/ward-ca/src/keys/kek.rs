//! The key-encryption key (KEK) that protects the CA's private keys in a shared database.
//!
//! With PostgreSQL state every replica signs, so every replica needs the issuer key; the
//! database holds it (and the root key, for the next rotation) sealed with AES-256-GCM under
//! this key, which each replica reads from a Secret file (`state.postgres.kek_file`). A
//! database dump or a read-only database account alone yields no key. The associated data
//! binds each sealed key to its trust domain, generation and role, so a sealed key copied
//! onto another row does not open. The file holds 32 random bytes, raw or base64 (what
//! `ward-ca init --config` writes when it is missing); like every key file it must not be
//! readable by group or others. Its id (a hash prefix) is stored beside each sealed key, so
//! a replica given the wrong KEK says so rather than "decryption failed".

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ward_tls::files::{check_key_permissions, write_atomic, KEY_MODE};

/// Bytes of key material.
pub const KEK_LEN: usize = 32;

/// Why a KEK or a sealed key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KekError {
    /// The file cannot be read, or is readable by others.
    #[error("{}: {problem}", .path.display())]
    File {
        /// The KEK file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A sealed key was sealed under another KEK.
    #[error("the CA keys in the database were sealed under key-encryption key {stored}, but {} is {ours}; every replica needs the same kek_file", .path.display())]
    WrongKek {
        /// The id stored beside the sealed key.
        stored: String,
        /// The id of the file given.
        ours: String,
        /// The KEK file.
        path: PathBuf,
    },
    /// Authentication failed: the sealed key or its row was altered.
    #[error("a sealed CA key ({what}) does not open under {}: the database row was altered or moved", .path.display())]
    Tampered {
        /// Which key (generation and role).
        what: String,
        /// The KEK file.
        path: PathBuf,
    },
    /// The system random source failed.
    #[error("no randomness for sealing a key")]
    Random,
}

/// A loaded key-encryption key.
pub struct Kek {
    key: LessSafeKey,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn decode(bytes: &[u8]) -> Option<[u8; KEK_LEN]> {
    if let Ok(raw) = <[u8; KEK_LEN]>::try_from(bytes) {
        return Some(raw);
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    <[u8; KEK_LEN]>::try_from(decoded.as_slice()).ok()
}

impl Kek {
    /// Reads `path`: 32 bytes, raw or base64, not readable by group or others.
    pub fn load(path: &Path) -> Result<Self, KekError> {
        let file = |problem: String| KekError::File {
            path: path.to_path_buf(),
            problem,
        };
        check_key_permissions(path).map_err(|e| file(e.to_string()))?;
        let bytes = std::fs::read(path).map_err(|e| file(e.to_string()))?;
        let raw = decode(&bytes).ok_or_else(|| {
            file(format!(
                "holds {} bytes; a key-encryption key is {KEK_LEN} random bytes, raw or base64 (e.g. `head -c 32 /dev/urandom | base64`)",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(raw, path))
    }

    fn from_bytes(raw: [u8; KEK_LEN], path: &Path) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
        let id = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &raw).unwrap_or_else(|_| unreachable!("32-byte key")),
        );
        Self {
            key,
            id,
            path: path.to_path_buf(),
        }
    }

    /// Writes a new random KEK (base64, mode 0600) to `path` if no file is there; loads it.
    /// Returns whether it was created.
    pub fn create_or_load(path: &Path) -> Result<(Self, bool), KekError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let mut raw = [0u8; KEK_LEN];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| KekError::Random)?;
        let text = base64::engine::general_purpose::STANDARD.encode(raw) + "\n";
        write_atomic(path, text.as_bytes(), KEY_MODE).map_err(|e| KekError::File {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        Ok((Self::from_bytes(raw, path), true))
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names this KEK (a hash prefix, not secret) beside what it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext`, bound to `aad`: a random nonce, then ciphertext and tag.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Random)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KekError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Kek::seal`] sealed with the same `aad`; `stored_id` is the KEK id kept
    /// beside it.
    pub fn open(&self, aad: &str, stored_id: &str, sealed: &[u8]) -> Result<Vec<u8>, KekError> {
        if stored_id != self.id {
            return Err(KekError::WrongKek {
                stored: stored_id.to_owned(),
                ours: self.id.clone(),
                path: self.path.clone(),
            });
        }
        let tampered = || KekError::Tampered {
            what: aad.to_owned(),
            path: self.path.clone(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(tampered());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| tampered())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
            .map_err(|_| tampered())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_under_the_same_kek_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let (kek, created) = Kek::create_or_load(&dir.path().join("kek")).unwrap();
        assert!(created);
        let sealed = kek.seal("td|gen1|issuer", b"secret key").unwrap();
        assert_eq!(
            kek.open("td|gen1|issuer", kek.id(), &sealed).unwrap(),
            b"secret key"
        );
        assert!(matches!(
            kek.open("td|gen2|issuer", kek.id(), &sealed),
            Err(KekError::Tampered { .. })
        ));
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN + 1] ^= 1;
        assert!(kek.open("td|gen1|issuer", kek.id(), &flipped).is_err());
        let (other, _) = Kek::create_or_load(&dir.path().join("kek2")).unwrap();
        assert!(matches!(
            other.open("td|gen1|issuer", kek.id(), &sealed),
            Err(KekError::WrongKek { .. })
        ));
        // Reloaded from its file, the same KEK.
        let again = Kek::load(&dir.path().join("kek")).unwrap();
        assert_eq!(again.id(), kek.id());
    }

    #[test]
    fn a_kek_file_must_be_private_and_32_bytes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Kek::load(&path).unwrap_err().to_string();
        assert!(e.contains("32 random bytes"), "{e}");
        std::fs::write(&path, [7u8; 32]).unwrap();
        assert!(Kek::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Kek::load(&path).is_err());
    }
}
