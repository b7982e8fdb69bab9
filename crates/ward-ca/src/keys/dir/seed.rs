//! `ward-ca seed`: installs a CA made elsewhere (`ward-ca init`) into the CA directory the
//! daemon will own, the first time only. On Kubernetes the CA's files arrive as a Secret,
//! mounted read-only with modes the kubelet chose (0440 with an fsGroup) behind symlinks; the
//! daemon needs a directory of its own with 0600 keys that `ward-ca rotate` can rewrite. This
//! is the init container of deploy/kubernetes/ca, in the ward-ca image itself (no shell).
//!
//! The files are copied into a sibling staging directory, loaded there with every check
//! `ward-ca serve` makes, and only then renamed into place: a crash leaves either no CA
//! directory (the next run starts over) or a complete one (the next run leaves it alone).

use std::fs;
use std::path::{Path, PathBuf};

use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};

use time::OffsetDateTime;
use ward_identity::TrustDomain;

use super::{create_dir, rotation};
use crate::authority::error::CaError;
use crate::authority::issuer::Issuer;
use crate::authority::layout::{
    BUNDLE, ISSUER_CERT, ISSUER_KEY, JOURNAL, JWT_KEY, ROOT_CERT, ROOT_KEY,
};
use crate::authority::Authority;

/// What `seed` did.
#[derive(Debug)]
pub enum Seeded {
    /// `dir` already held a CA: nothing was read or written.
    Present,
    /// The CA was copied in and checked.
    Copied {
        /// The trust domain the CA serves.
        trust_domain: TrustDomain,
        /// End of the signing issuer's validity.
        issuer_not_after: OffsetDateTime,
    },
}

/// The files of a CA directory a fresh CA has, whether each is a key, and whether it must
/// be there (the root key may be kept offline; `jwt.key` is absent in CAs made before
/// JWT-SVIDs; the journal is written when missing).
const FILES: [(&str, bool, bool); 7] = [
    (ROOT_CERT, false, true),
    (ROOT_KEY, true, false),
    (ISSUER_CERT, false, true),
    (ISSUER_KEY, true, true),
    (JWT_KEY, true, false),
    (BUNDLE, false, true),
    (JOURNAL, false, false),
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the CA in `from` into `dir` unless `dir` holds one already (see the module docs).
pub fn seed(from: &Path, dir: &Path) -> Result<Seeded, CaError> {
    if dir.join(ROOT_CERT).exists() {
        return Ok(Seeded::Present);
    }
    if dir.exists() && fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(CaError::BadCa {
            path: dir.to_path_buf(),
            problem: format!(
                "holds files but no {ROOT_CERT}: refusing to seed over them (move them away)"
            ),
        });
    }
    let staging = staging_for(dir);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    create_dir(&staging)?;
    for (name, key, required) in FILES {
        let source = from.join(name);
        if !source.exists() {
            if required {
                return Err(CaError::BadCa {
                    path: from.to_path_buf(),
                    problem: format!("{name} is missing: is this a CA directory (`ward-ca init`)?"),
                });
            }
            continue;
        }
        let bytes = fs::read(&source).map_err(io(&source))?;
        let mode = if key { KEY_MODE } else { PUBLIC_MODE };
        write_atomic(&staging.join(name), &bytes, mode)?;
    }
    if !staging.join(JOURNAL).exists() {
        rotation::reset(&staging)?;
    }
    let issuer = Issuer::load(&staging)?;
    Authority::load(&staging, issuer.trust_domain())?;
    if dir.exists() {
        fs::remove_dir(dir).map_err(io(dir))?;
    }
    fs::rename(&staging, dir).map_err(io(dir))?;
    Ok(Seeded::Copied {
        trust_domain: issuer.trust_domain().clone(),
        issuer_not_after: issuer.not_after(),
    })
}

/// `DIR.seed` beside `DIR` (same file system, so the final rename is atomic).
fn staging_for(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".seed");
    dir.with_file_name(name)
}
