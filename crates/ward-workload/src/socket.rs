//! The endpoint's Unix socket: taken over only when stale, created with the narrowest mode
//! the allowed callers need, and removed when the server stops.
//!
//! A path that answers a connection belongs to a live server (another sidecar, or an older
//! one still draining) and is refused; a socket nobody answers on is left over from a crash
//! and replaced; anything that is not a socket is never touched. The file mode is a first
//! fence only (owner; plus group when `allowed_gids` is set, the socket then belonging to the
//! first of them; plus others when a uid other than ours is allowed): the authority is the
//! kernel's peer credentials, checked on every call.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::config::WorkloadApiConfig;
use crate::error::WorkloadError;

/// Removes the socket file when dropped, if it is still the one we created.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    /// Device, inode and change time: an inode number alone may be reused at once.
    stamp: (u64, u64, i64, i64),
}

fn stamp(m: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| stamp(&m) == self.stamp);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> WorkloadError + 'a {
    move |source| WorkloadError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Clears the way for a new socket at `path`: nothing there, or a stale socket (removed).
fn clear_stale(path: &Path) -> Result<(), WorkloadError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path, "cannot inspect")(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(WorkloadError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(WorkloadError::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale Workload API socket");
            std::fs::remove_file(path).map_err(io(path, "cannot remove the stale socket"))
        }
        Err(e) => Err(io(path, "cannot tell whether a server listens here")(e)),
    }
}

/// Binds the socket of `config` with its mode and group set (before anyone is served).
pub fn bind(config: &WorkloadApiConfig) -> Result<(UnixListener, SocketGuard), WorkloadError> {
    let path = config.socket.as_path();
    clear_stale(path)?;
    let listener = UnixListener::bind(path).map_err(io(path, "cannot bind"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io(path, "cannot inspect"))?;
    let mut guard = SocketGuard {
        path: path.to_path_buf(),
        stamp: stamp(&meta),
    };
    let own_uid = meta.uid();
    let mut mode = 0o600;
    if let Some(&gid) = config.allowed_gids.first() {
        mode |= 0o060;
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(io(path, "cannot give the socket to the first allowed gid"))?;
    }
    if config.allowed_uids.iter().any(|&u| u != own_uid) {
        mode |= 0o006;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(path, "cannot set the socket's mode"))?;
    // The change time moved with the mode: the guard must recognize the file as it is now.
    let meta = std::fs::symlink_metadata(path).map_err(io(path, "cannot inspect"))?;
    guard.stamp = stamp(&meta);
    Ok((listener, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, uids: Vec<u32>) -> WorkloadApiConfig {
        WorkloadApiConfig {
            socket: dir.join("api.sock"),
            allowed_uids: uids,
            allowed_gids: Vec::new(),
        }
    }

    #[tokio::test]
    async fn live_socket_is_refused_stale_one_replaced_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let own = std::fs::metadata(dir.path()).unwrap().uid();
        let cfg = config(dir.path(), vec![own]);
        let (live, guard) = bind(&cfg).unwrap();
        let mode = std::fs::metadata(&cfg.socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(bind(&cfg), Err(WorkloadError::InUse { .. })));
        // Closing the listener without the guard leaves a stale file: the next bind takes it.
        drop(live);
        assert!(cfg.socket.exists());
        let (_again, guard2) = bind(&cfg).unwrap();
        // The first guard's socket was replaced: dropping it leaves the new one alone.
        drop(guard);
        assert!(cfg.socket.exists());
        drop(guard2);
        assert!(!cfg.socket.exists());
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), vec![0]);
        std::fs::write(&cfg.socket, b"precious").unwrap();
        assert!(matches!(bind(&cfg), Err(WorkloadError::NotASocket { .. })));
        assert_eq!(std::fs::read(&cfg.socket).unwrap(), b"precious");
    }
}
