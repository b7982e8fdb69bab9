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

use rustls_pki_types::CertificateDer;
use ward_identity::TrustDomain;

use crate::authority::error::CaError;
use crate::authority::generation::{generate, GenerationPem};
use crate::authority::jwt_svid::JwtAlgorithm;
use crate::authority::layout::{NEXT, ROOT_KEY};
use crate::authority::rotation::{
    check_finish, check_prepare, check_published, Journal, Phase, Prepared, RotationError,
};
use ward_api::IssuerRole;

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
            signing: generate(trust_domain, None, jwt)?.pem,
            next: None,
            previous: None,
            journal: Journal {
                bundle_version: 1,
                ..Journal::default()
            },
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
            generate(trust_domain, None, jwt)?
        } else {
            let key = self.signing.root_key_pem.as_deref().ok_or_else(|| CaError::BadCa {
                path: ROOT_KEY.into(),
                problem: "the root key is not held here, so no new issuer can be signed under the root; rotate with --root".into(),
            })?;
            generate(trust_domain, Some((&self.signing.root()?, key)), jwt)?
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
