//! The `workload_api:` section of the sidecar's config: where the socket goes and who may
//! call it. The proxy's config parser reads it (so its errors name the file and line); the
//! checks that need no file system live here so every reader applies the same ones.

use std::path::PathBuf;

use serde::Deserialize;

/// Longest socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The Workload API endpoint: its socket, and the callers allowed by kernel credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadApiConfig {
    /// The Unix socket path.
    pub socket: PathBuf,
    /// User ids allowed to call (the caller's uid as the kernel reports it).
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
    /// Group ids allowed to call (the caller's primary gid as the kernel reports it).
    #[serde(default)]
    pub allowed_gids: Vec<u32>,
}

impl WorkloadApiConfig {
    /// Why this section cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.allowed_uids.is_empty() && self.allowed_gids.is_empty() {
            return Some(
                "workload_api: name at least one of allowed_uids or allowed_gids (callers are \
                 authorized by the kernel's peer credentials; nobody is allowed by default)"
                    .into(),
            );
        }
        let len = self.socket.as_os_str().len();
        if len == 0 {
            return Some("workload_api.socket: give a path".into());
        }
        if len > MAX_SOCKET_PATH {
            return Some(format!(
                "workload_api.socket: {} is {len} bytes; a Unix socket path is at most \
                 {MAX_SOCKET_PATH}",
                self.socket.display()
            ));
        }
        None
    }

    /// Whether a caller with these kernel credentials may call.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        self.allowed_uids.contains(&uid) || self.allowed_gids.contains(&gid)
    }
}
