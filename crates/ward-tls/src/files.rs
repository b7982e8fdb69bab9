//! Files that must never be half-written or too readable: atomic replace and key permissions.
//!
//! [`write_atomic`] writes a temporary file in the same directory with the final mode already
//! set, fsyncs it, renames it over the destination and fsyncs the directory, so a crash leaves
//! either the old file or the new one. [`check_key_permissions`] refuses a key file that group
//! or others can read. [`ContentWatch`] is how anything polled on a timer notices a change.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{FileError, PemError};

/// Mode for private keys.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates and bundles (public material).
pub const PUBLIC_MODE: u32 = 0o644;

/// Atomically replaces `path` with `bytes`, created with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let io = |step: &'static str| {
        let path = path.to_path_buf();
        move |source| FileError::Io { path, step, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create temporary file"))?;
    let result = (|| {
        // The umask may have narrowed the mode at creation; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("set permissions"))?;
        file.write_all(bytes).map_err(io("write"))?;
        file.sync_all().map_err(io("fsync"))?;
        fs::rename(&tmp, path).map_err(io("rename into place"))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Refuses a private key file whose mode lets group or others read or write it.
pub fn check_key_permissions(path: &Path) -> Result<(), PemError> {
    let meta = fs::metadata(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PemError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Lower-case hex SHA-256 of `bytes`: certificate fingerprints (as `openssl x509
/// -fingerprint -sha256` prints them, without the colons), token hashes, policy versions.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A SHA-256 over several files' contents (each length-prefixed, so moving bytes from one
/// file to the next is a change too): how ward notices that watched files changed without
/// keeping their contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentDigest([u8; 32]);

impl ContentDigest {
    /// The digest of `parts`, in order.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }
}

/// The last content seen of something polled (a policy file, an identity's three files, a
/// CA directory, a JWKS file). Everything ward re-reads on a timer goes through one of these,
/// so a change is acted on once and a bad version is reported once, not on every tick.
#[derive(Clone, Debug, Default)]
pub struct ContentWatch {
    last: Option<ContentDigest>,
}

impl ContentWatch {
    /// A watch that has seen `digest` already.
    pub fn seen(digest: ContentDigest) -> Self {
        Self { last: Some(digest) }
    }

    /// Whether `digest` differs from the last one seen (always the first time); remembers it.
    pub fn changed(&mut self, digest: ContentDigest) -> bool {
        let changed = self.last != Some(digest);
        self.last = Some(digest);
        changed
    }
}
