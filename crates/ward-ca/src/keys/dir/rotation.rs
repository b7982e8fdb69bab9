//! Rotation of the CA's own keys without an outage: prepare, activate, finish.
//!
//! `prepare` writes the next generation into `next/` (a new issuer under the current root,
//! or under a new root too) and publishes its root in `bundle.pem` beside the current one,
//! without signing with it. `activate` copies the current generation to `previous/` and the
//! next one over the top-level files, which the daemon watches and signs with from then on.
//! `finish` removes `previous/`, and with it the old root from the bundle. Each step is
//! recorded in `rotation.json`, can be rerun after a crash, and refuses to run out of order.
//! The bundle is always derived from the generations on disk (current, next, previous), so
//! it cannot lack a root that a live certificate chains to; checking that no live certificate
//! still chains to the old generation is the caller's job (it needs the state database).
//! The same generations decide which issuers the bundle allows ([`bundle_issuers`]): after
//! `finish` the previous issuer is refused everywhere even when the root stays, which is what
//! makes an issuer-only rotation recover from a stolen issuer key. [`retire`] is the emergency
//! form: activate a prepared generation if need be, then finish at once.

use std::fs::{self, File};
use std::path::Path;

use rustls_pki_types::CertificateDer;
use ward_tls::files::{write_atomic, KEY_MODE, PUBLIC_MODE};
use ward_tls::pem::{certs_to_pem, load_certs};

use crate::authority::error::CaError;
use crate::authority::issuer::Issuer;
use crate::authority::jwt_svid::JwtAlgorithm;
pub use crate::authority::layout::{JOURNAL, NEXT, PREVIOUS};
use crate::authority::rotation::{check_finish, check_prepare, check_published};
pub use crate::authority::rotation::{Journal, Phase, Prepared, RotationError};
use crate::keys::dir::{self, BUNDLE, ISSUER_CERT, ISSUER_KEY, JWT_KEY, ROOT_CERT, ROOT_KEY};

/// The four files of a generation, keys first (the order they are written in).
const FILES: [(&str, u32); 4] = [
    (ROOT_KEY, KEY_MODE),
    (ISSUER_KEY, KEY_MODE),
    (ROOT_CERT, PUBLIC_MODE),
    (ISSUER_CERT, PUBLIC_MODE),
];

impl Journal {
    /// Reads the journal of `dir`; a CA without one has never rotated.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let path = dir.join(JOURNAL);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CaError::BadCa {
                path,
                problem: format!("unreadable rotation journal: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CaError::Io { path, source }),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), CaError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| CaError::BadCa {
            path: dir.join(JOURNAL),
            problem: e.to_string(),
        })?;
        write_atomic(&dir.join(JOURNAL), text.as_bytes(), PUBLIC_MODE)?;
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError {
    let path = path.to_path_buf();
    move |source| CaError::Io { path, source }
}

fn sync_dir(dir: &Path) -> Result<(), CaError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn remove_dir(dir: &Path) -> Result<(), CaError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Copies a generation's files from `from` to `to`, keys first.
fn copy_generation(from: &Path, to: &Path) -> Result<(), CaError> {
    // The JWT key first (a key before its certificates); a generation made before JWT-SVIDs
    // has none, and then none of another generation may be left behind.
    match fs::read(from.join(JWT_KEY)) {
        Ok(bytes) => write_atomic(&to.join(JWT_KEY), &bytes, KEY_MODE)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fs::remove_file(to.join(JWT_KEY)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&to.join(JWT_KEY))(e)),
            }
        }
        Err(e) => return Err(io(&from.join(JWT_KEY))(e)),
    }
    for (name, mode) in FILES {
        let bytes = fs::read(from.join(name)).map_err(io(&from.join(name)))?;
        write_atomic(&to.join(name), &bytes, mode)?;
    }
    Ok(())
}

/// Fills `<name>.tmp/` and renames it to `name`, so the directory appears whole or not at all.
fn publish_dir(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), CaError>,
) -> Result<(), CaError> {
    let tmp = dir.join(format!("{name}.tmp"));
    remove_dir(&tmp)?;
    dir::create_dir(&tmp)?;
    fill(&tmp)?;
    sync_dir(&tmp)?;
    fs::rename(&tmp, dir.join(name)).map_err(io(&dir.join(name)))?;
    sync_dir(dir)
}

/// The roots workloads must trust: the current generation's, then the next's, then the
/// previous one's, each once.
pub fn bundle_roots(dir: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    for sub in [None, Some(NEXT), Some(PREVIOUS)] {
        let path = sub.map_or(dir.join(ROOT_CERT), |s| dir.join(s).join(ROOT_CERT));
        if sub.is_some() && !path.exists() {
            continue;
        }
        for cert in load_certs(&path)? {
            if !roots.contains(&cert) {
                roots.push(cert);
            }
        }
    }
    Ok(roots)
}

/// Which generation an issuer published in the bundle belongs to (the API's own type).
pub use ward_api::IssuerRole;

/// The issuing certificates workloads must accept leaves from, by generation: the signing
/// one, then the prepared next one, then the previous one until `finish` retires it. Any
/// other issuer under the same root (every issuer an issuer-only rotation retired) is refused.
pub fn bundle_issuers(dir: &Path) -> Result<Vec<(IssuerRole, CertificateDer<'static>)>, CaError> {
    let mut issuers = Vec::new();
    for (sub, role) in [
        (None, IssuerRole::Signing),
        (Some(NEXT), IssuerRole::Next),
        (Some(PREVIOUS), IssuerRole::Previous),
    ] {
        let path = sub.map_or(dir.join(ISSUER_CERT), |s| dir.join(s).join(ISSUER_CERT));
        if sub.is_some() && !path.exists() {
            continue;
        }
        if let Some(cert) = load_certs(&path)?.into_iter().next() {
            if !issuers.iter().any(|(_, c)| c == &cert) {
                issuers.push((role, cert));
            }
        }
    }
    Ok(issuers)
}

/// Rewrites `bundle.pem` from the generations on disk and records the change.
fn publish_bundle(dir: &Path, journal: &mut Journal) -> Result<(), CaError> {
    let pem = certs_to_pem(&bundle_roots(dir)?);
    write_atomic(&dir.join(BUNDLE), pem.as_bytes(), PUBLIC_MODE)?;
    journal.bundle_version += 1;
    journal.save(dir)
}

/// After `init`: no rotation in progress, a bundle of the one root.
pub(crate) fn reset(dir: &Path) -> Result<(), CaError> {
    let mut journal = Journal {
        bundle_version: Journal::load(dir).map_or(0, |j| j.bundle_version),
        ..Journal::default()
    };
    for sub in [NEXT, PREVIOUS] {
        remove_dir(&dir.join(sub))?;
        remove_dir(&dir.join(format!("{sub}.tmp")))?;
    }
    publish_bundle(dir, &mut journal)
}

/// `ward-ca rotate prepare`: a new issuer (under a new root with `new_root`) in `next/`, its
/// root published in the bundle.
pub fn prepare(
    dir: &Path,
    new_root: bool,
    now: i64,
    jwt: JwtAlgorithm,
) -> Result<Prepared, CaError> {
    let mut journal = Journal::load(dir)?;
    check_prepare(&journal)?;
    if dir.join(PREVIOUS).exists() {
        return Err(RotationError::Leftover {
            path: dir.join(PREVIOUS),
        }
        .into());
    }
    let current = Issuer::load(dir)?;
    let generation = if new_root {
        dir::generate(current.trust_domain(), None, jwt)?
    } else {
        let key = fs::read_to_string(dir.join(ROOT_KEY)).map_err(io(&dir.join(ROOT_KEY)))?;
        dir::generate(current.trust_domain(), Some((current.root(), &key)), jwt)?
    };
    // A next/ without a journal entry is what an interrupted prepare leaves: replace it.
    remove_dir(&dir.join(NEXT))?;
    publish_dir(dir, NEXT, |tmp| dir::write_generation(tmp, &generation))?;
    Issuer::load(&dir.join(NEXT))?;
    journal.phase = Phase::Prepared;
    journal.new_root = new_root;
    journal.prepared_at = Some(now);
    journal.activated_at = None;
    publish_bundle(dir, &mut journal)?;
    Ok(Prepared {
        issuer_name: generation.issuer_name,
        root_name: generation.root_name,
        new_root,
    })
}

/// `ward-ca rotate activate`: the next generation signs from now on. Its issuer (and a new
/// root) must have been in the bundle for two of the workloads' bundle refresh intervals
/// (`refresh_hint` seconds) unless `force`: a workload that lacks it would refuse every new
/// certificate, the CA's own serving certificate included, and so could not even fetch the
/// bundle that names it.
pub fn activate(dir: &Path, now: i64, refresh_hint: i64, force: bool) -> Result<(), CaError> {
    let mut journal = Journal::load(dir)?;
    match journal.phase {
        Phase::Prepared => {
            Issuer::load(&dir.join(NEXT))?;
            check_published(&journal, now, refresh_hint, force)?;
            journal.phase = Phase::Activating;
            journal.save(dir)?;
        }
        Phase::Activating => {}
        phase => {
            return Err(RotationError::OutOfOrder {
                phase,
                wanted: "activate",
            }
            .into())
        }
    }
    // Each step below is safe to repeat: previous/ appears whole, before anything at the top
    // level changes; next/ is removed only after its files are copied.
    if !dir.join(PREVIOUS).exists() {
        publish_dir(dir, PREVIOUS, |tmp| copy_generation(dir, tmp))?;
    }
    if dir.join(NEXT).exists() {
        copy_generation(&dir.join(NEXT), dir)?;
        Issuer::load(dir)?;
        remove_dir(&dir.join(NEXT))?;
        sync_dir(dir)?;
    }
    journal.phase = Phase::Activated;
    journal.activated_at = Some(now);
    publish_bundle(dir, &mut journal)
}

/// `ward-ca rotate retire`: stops trusting the previous issuer now (an emergency, such as a
/// stolen issuer key), without waiting for its certificates to expire. A prepared generation
/// is activated first (with the same publication wait as `activate`, unless `force`), then
/// the rotation is finished. Returns whether an activation happened.
pub fn retire(dir: &Path, now: i64, refresh_hint: i64, force: bool) -> Result<bool, CaError> {
    let journal = Journal::load(dir)?;
    let activated = match journal.phase {
        Phase::Prepared | Phase::Activating => {
            activate(dir, now, refresh_hint, force)?;
            true
        }
        Phase::Activated => false,
        Phase::Idle => return Err(RotationError::NothingToRetire.into()),
    };
    finish(dir)?;
    Ok(activated)
}

/// `ward-ca rotate finish`: drops the previous generation from the bundle: its issuer is no
/// longer allowed, and its root goes too if the rotation brought a new one. The caller has
/// checked that nothing live chains to it.
pub fn finish(dir: &Path) -> Result<(), CaError> {
    let mut journal = Journal::load(dir)?;
    check_finish(&journal)?;
    remove_dir(&dir.join(PREVIOUS))?;
    sync_dir(dir)?;
    journal = Journal {
        bundle_version: journal.bundle_version,
        ..Journal::default()
    };
    publish_bundle(dir, &mut journal)
}
