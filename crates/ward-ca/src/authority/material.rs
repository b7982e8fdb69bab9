//! CA material held in memory rather than in a CA directory: what replicas on a shared
//! database sign and publish with, and the same rotation steps as [`crate::keys::dir::rotation`] applied to
//! it.
//!
//! A [`CaMaterial`] is the signing generation, the prepared next one and the previous one
//! (each a root and an issuer with their keys) plus the rotation [`Journal`]. The steps here
//! check the same order and publication wait as the directory's, but need no crash-safe
//! intermediate phase: the database writes a whole new material in one transaction
//! ([`crate::keys::db`]). The bundle derives from the generations exactly as the directory's
//! does: roots of current, next and previous; issuers signing, next and previous.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use ward_identity::TrustDomain;
use ward_tls::pem::certs_from_pem;

use crate::authority::error::CaError;
use crate::authority::jwt_svid::JwtAlgorithm;
use crate::authority::rotation::{
    check_finish, check_prepare, check_published, Journal, Phase, Prepared, RotationError,
};
use crate::keys::dir::rotation::{IssuerRole, NEXT, PREVIOUS};
use crate::keys::dir::{self, ISSUER_CERT, ISSUER_KEY, JWT_KEY, ROOT_CERT, ROOT_KEY};

/// One generation's certificates and keys, as PEM.
#[derive(Clone)]
pub struct GenerationPem {
    /// The root certificate.
    pub root_pem: String,
    /// The root's key; `None` for a root kept offline (such a CA cannot rotate its issuer).
    pub root_key_pem: Option<String>,
    /// The issuing certificate.
    pub issuer_pem: String,
    /// The issuer's key.
    pub issuer_key_pem: String,
    /// The JWT-SVID signing key (P-256); `None` in generations made before JWT-SVIDs.
    pub jwt_key_pem: Option<String>,
}

impl std::fmt::Debug for GenerationPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationPem").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_key(path: &Path) -> Result<String, CaError> {
    ward_tls::files::check_key_permissions(path)?;
    read(path)
}

/// A key file that a generation may lack (a root kept offline, a generation made before
/// JWT-SVIDs), checked as every key file is when it is there.
pub(crate) fn read_optional_key(path: &Path) -> Result<Option<String>, CaError> {
    path.exists().then(|| read_key(path)).transpose()
}

impl GenerationPem {
    /// Reads the generation whose files are in `dir` (checked as [`crate::Issuer::load`]
    /// checks them).
    pub fn read(dir: &Path) -> Result<Self, CaError> {
        crate::Issuer::load(dir)?;
        Ok(Self {
            root_pem: read(&dir.join(ROOT_CERT))?,
            root_key_pem: read_optional_key(&dir.join(ROOT_KEY))?,
            issuer_pem: read(&dir.join(ISSUER_CERT))?,
            issuer_key_pem: read_key(&dir.join(ISSUER_KEY))?,
            jwt_key_pem: read_optional_key(&dir.join(JWT_KEY))?,
        })
    }

    fn cert(&self, which: &str, pem: &str) -> Result<CertificateDer<'static>, CaError> {
        Ok(certs_from_pem(which, pem.as_bytes())?.remove(0))
    }

    /// The root certificate.
    pub fn root(&self) -> Result<CertificateDer<'static>, CaError> {
        self.cert(ROOT_CERT, &self.root_pem)
    }

    /// The issuing certificate.
    pub fn issuer(&self) -> Result<CertificateDer<'static>, CaError> {
        self.cert(ISSUER_CERT, &self.issuer_pem)
    }
}

/// Every generation a CA holds, and where its rotation stands.
#[derive(Clone, Debug)]
pub struct CaMaterial {
    /// The generation that signs.
    pub signing: GenerationPem,
    /// The prepared generation (published, not signing).
    pub next: Option<GenerationPem>,
    /// The generation that signed before the last activation, until `finish`.
    pub previous: Option<GenerationPem>,
    /// Phase, times and bundle version.
    pub journal: Journal,
}

impl CaMaterial {
    /// A CA that has never rotated.
    pub fn new(trust_domain: &TrustDomain, jwt: JwtAlgorithm) -> Result<Self, CaError> {
        Ok(Self {
            signing: dir::generate(trust_domain, None, jwt)?.pem,
            next: None,
            previous: None,
            journal: Journal {
                bundle_version: 1,
                ..Journal::default()
            },
        })
    }

    /// Reads a CA directory whole: the generations on disk and the journal. Refuses one in
    /// the middle of an activation (rerun `ward-ca rotate activate` there first).
    pub fn read_dir(dir: &Path) -> Result<Self, CaError> {
        let journal = Journal::load(dir)?;
        if journal.phase == Phase::Activating {
            return Err(RotationError::OutOfOrder {
                phase: journal.phase,
                wanted: "be copied",
            }
            .into());
        }
        let optional = |sub: &str| -> Result<Option<GenerationPem>, CaError> {
            let path = dir.join(sub);
            path.exists()
                .then(|| GenerationPem::read(&path))
                .transpose()
        };
        Ok(Self {
            signing: GenerationPem::read(dir)?,
            next: optional(NEXT)?,
            previous: optional(PREVIOUS)?,
            journal,
        })
    }

    /// The generations with their roles: signing, next, previous.
    pub fn generations(&self) -> impl Iterator<Item = (IssuerRole, &GenerationPem)> {
        [
            (IssuerRole::Signing, Some(&self.signing)),
            (IssuerRole::Next, self.next.as_ref()),
            (IssuerRole::Previous, self.previous.as_ref()),
        ]
        .into_iter()
        .filter_map(|(role, g)| g.map(|g| (role, g)))
    }

    /// The roots workloads must trust, each once, the signing root first.
    pub fn roots(&self) -> Result<Vec<CertificateDer<'static>>, CaError> {
        let mut roots = Vec::new();
        for (_, g) in self.generations() {
            let root = g.root()?;
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        Ok(roots)
    }

    /// The issuers allowed to sign leaves, by role.
    pub fn issuers(&self) -> Result<Vec<(IssuerRole, CertificateDer<'static>)>, CaError> {
        let mut issuers: Vec<(IssuerRole, CertificateDer<'static>)> = Vec::new();
        for (role, g) in self.generations() {
            let cert = g.issuer()?;
            if !issuers.iter().any(|(_, c)| c == &cert) {
                issuers.push((role, cert));
            }
        }
        Ok(issuers)
    }

    /// `rotate prepare`: a new issuer (and root with `new_root`) published, not signing.
    pub fn prepare(
        &mut self,
        trust_domain: &TrustDomain,
        new_root: bool,
        now: i64,
        jwt: JwtAlgorithm,
    ) -> Result<Prepared, CaError> {
        check_prepare(&self.journal)?;
        let generation = if new_root {
            dir::generate(trust_domain, None, jwt)?
        } else {
            let key = self.signing.root_key_pem.as_deref().ok_or_else(|| CaError::BadCa {
                path: ROOT_KEY.into(),
                problem: "the root key is not held here, so no new issuer can be signed under the root; rotate with --root".into(),
            })?;
            dir::generate(trust_domain, Some((&self.signing.root()?, key)), jwt)?
        };
        self.next = Some(generation.pem);
        self.journal.phase = Phase::Prepared;
        self.journal.new_root = new_root;
        self.journal.prepared_at = Some(now);
        self.journal.activated_at = None;
        self.journal.bundle_version += 1;
        Ok(Prepared {
            issuer_name: generation.issuer_name,
            root_name: generation.root_name,
            new_root,
        })
    }

    /// `rotate activate`: the prepared generation signs, the current one becomes previous.
    pub fn activate(&mut self, now: i64, refresh_hint: i64, force: bool) -> Result<(), CaError> {
        if self.journal.phase != Phase::Prepared {
            return Err(RotationError::OutOfOrder {
                phase: self.journal.phase,
                wanted: "activate",
            }
            .into());
        }
        check_published(&self.journal, now, refresh_hint, force)?;
        let next = self.next.take().ok_or_else(|| CaError::BadCa {
            path: NEXT.into(),
            problem: "the journal says prepared, but there is no next generation".into(),
        })?;
        self.previous = Some(std::mem::replace(&mut self.signing, next));
        self.journal.phase = Phase::Activated;
        self.journal.activated_at = Some(now);
        self.journal.bundle_version += 1;
        Ok(())
    }

    /// `rotate finish`: the previous generation is dropped, its issuer retired.
    pub fn finish(&mut self) -> Result<(), CaError> {
        check_finish(&self.journal)?;
        self.previous = None;
        self.journal = Journal {
            bundle_version: self.journal.bundle_version + 1,
            ..Journal::default()
        };
        Ok(())
    }

    /// `rotate retire`: activate a prepared generation if need be, then finish at once.
    /// Returns whether an activation happened.
    pub fn retire(&mut self, now: i64, refresh_hint: i64, force: bool) -> Result<bool, CaError> {
        let activated = match self.journal.phase {
            Phase::Prepared => {
                self.activate(now, refresh_hint, force)?;
                true
            }
            Phase::Activated => false,
            // Never stored in a database (each step is one transaction there).
            Phase::Idle | Phase::Activating => return Err(RotationError::NothingToRetire.into()),
        };
        self.finish()?;
        Ok(activated)
    }
}
