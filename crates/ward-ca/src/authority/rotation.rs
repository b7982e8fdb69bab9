//! The rules every CA rotation follows, wherever its generations are kept (a CA directory,
//! [`crate::keys::dir::rotation`]; the database, [`crate::authority::material`]): the phases and the journal that
//! records them, the order of the steps, and the publication wait before a new issuer signs.

use serde::{Deserialize, Serialize};

use crate::authority::layout::JOURNAL;

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No rotation in progress.
    #[default]
    Idle,
    /// `next/` exists and its root is in the bundle; the current generation signs.
    Prepared,
    /// An activation started and did not complete; rerun `activate`.
    Activating,
    /// The new generation signs; `previous/` waits for `finish`.
    Activated,
}

impl std::fmt::Display for Phase {
    /// As `rotation.json` spells it (`idle`, `prepared`, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::Prepared => "prepared",
            Self::Activating => "activating",
            Self::Activated => "activated",
        })
    }
}

/// `rotation.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// Where the rotation stands.
    pub phase: Phase,
    /// Whether the rotation brings a new root (then `finish` drops a root, not only an issuer).
    #[serde(default)]
    pub new_root: bool,
    /// When `prepare` published the next generation, Unix seconds.
    #[serde(default)]
    pub prepared_at: Option<i64>,
    /// When `activate` completed, Unix seconds.
    #[serde(default)]
    pub activated_at: Option<i64>,
    /// Moves on every change of the bundle; part of the bundle's `spiffe_sequence`.
    #[serde(default)]
    pub bundle_version: u64,
}

/// Why a rotation step refused to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The step does not follow from where the rotation stands.
    #[error("{}", out_of_order(*.phase, .wanted))]
    OutOfOrder {
        /// Where the rotation stands.
        phase: Phase,
        /// What was asked (`activate`, `finish`, `prepare another`).
        wanted: &'static str,
    },
    /// `previous/` is there although the journal records no rotation.
    #[error("{} exists but no rotation is recorded in {JOURNAL}; remove it if it is a leftover", .path.display())]
    Leftover {
        /// The leftover directory.
        path: std::path::PathBuf,
    },
    /// The next generation has not been published for two bundle refreshes yet.
    #[error("the next issuer was published {published}s ago and workloads may not have fetched it yet (they refresh the bundle every {hint}s); wait {wait}s more, or pass --force")]
    TooEarly {
        /// Seconds since `prepare`.
        published: i64,
        /// The bundle refresh hint, seconds.
        hint: i64,
        /// Seconds still to wait.
        wait: i64,
    },
    /// `retire` with no rotation in progress.
    #[error("nothing to retire: no rotation is in progress. In an emergency run `ward-ca rotate prepare` (with --root if the root key is exposed) and then `ward-ca rotate retire`")]
    NothingToRetire,
    /// The change is stored, but live replicas did not load it in time.
    #[error("the change is stored, but these live replicas did not load it within {wait}s: {replicas}; they keep serving the previous material until they do (their logs say why: a different kek_file?). `ward-ca rotate status` shows what each serves")]
    Lagging {
        /// How long was waited, seconds.
        wait: u64,
        /// The replicas and what they serve.
        replicas: String,
    },
    /// Certificates of the previous issuer are still valid and not renewed.
    #[error("{count} certificate(s) signed by the previous issuer are still valid, unrevoked and not yet renewed (the last expires {last}); retiring it now would break them. `ward-ca certs list --issuer {issuer}` names them (state valid); revoke those that no longer matter, wait, or pass --force")]
    StillLive {
        /// How many.
        count: i64,
        /// When the last expires (RFC 3339).
        last: String,
        /// The previous issuer's serial.
        issuer: String,
    },
    /// JWT-SVIDs the previous generation's key signed may still be valid.
    #[error("JWT-SVIDs signed by the previous generation's key may be valid until {until} (activation + jwt_svid.max_ttl + {JWT_SKEW_SECS}s of clock skew), and relying parties need its public key until then; retiring it now would make them refuse those tokens. Wait, or pass --force")]
    JwtStillLive {
        /// When the last may expire (RFC 3339).
        until: String,
    },
}

/// Clock skew allowed between the CA and relying parties when judging whether a JWT-SVID of
/// a retired key can still be valid somewhere (as for certificates: 150 s).
pub const JWT_SKEW_SECS: i64 = 150;

/// Until when a JWT-SVID signed by the previous generation's key may be valid: its last
/// token was signed no later than the activation and lives at most `max_ttl`. `None` when no
/// activation is recorded or the previous generation had no JWT key.
pub fn jwt_live_until(
    journal: &Journal,
    max_ttl: Option<std::time::Duration>,
    previous_had_key: bool,
) -> Option<i64> {
    let at = journal.activated_at.filter(|_| previous_had_key)?;
    Some(at + max_ttl?.as_secs() as i64 + JWT_SKEW_SECS)
}

fn out_of_order(phase: Phase, wanted: &str) -> String {
    match phase {
        Phase::Idle => format!("no rotation is in progress, so there is nothing to {wanted}; start one with `ward-ca rotate prepare`"),
        Phase::Prepared => format!("a rotation is prepared (next/), so it cannot {wanted} now; run `ward-ca rotate activate` next"),
        Phase::Activating => "an activation was interrupted; rerun `ward-ca rotate activate` to complete it".into(),
        Phase::Activated => format!("the last rotation is activated but not finished, so it cannot {wanted} now; run `ward-ca rotate finish` once the old issuer's certificates have been renewed, revoked or have expired (`ward-ca rotate status` says how many remain)"),
    }
}

/// `prepare` starts a rotation only when none is in progress.
pub(crate) fn check_prepare(journal: &Journal) -> Result<(), RotationError> {
    match journal.phase {
        Phase::Idle => Ok(()),
        phase => Err(RotationError::OutOfOrder {
            phase,
            wanted: "prepare another",
        }),
    }
}

/// A prepared generation may sign once workloads have had two bundle refreshes
/// (`refresh_hint` seconds each) to fetch it, or at once with `force`.
pub(crate) fn check_published(
    journal: &Journal,
    now: i64,
    refresh_hint: i64,
    force: bool,
) -> Result<(), RotationError> {
    let publish_wait = 2 * refresh_hint;
    let published = now - journal.prepared_at.unwrap_or(0);
    if !force && published < publish_wait {
        return Err(RotationError::TooEarly {
            published,
            hint: refresh_hint,
            wait: publish_wait - published,
        });
    }
    Ok(())
}

/// `finish` follows an activation.
pub(crate) fn check_finish(journal: &Journal) -> Result<(), RotationError> {
    match journal.phase {
        Phase::Activated => Ok(()),
        phase => Err(RotationError::OutOfOrder {
            phase,
            wanted: "finish",
        }),
    }
}

/// What `prepare` created.
#[derive(Debug)]
pub struct Prepared {
    /// Common name of the new issuer.
    pub issuer_name: String,
    /// Common name of its root.
    pub root_name: String,
    /// Whether the root is new.
    pub new_root: bool,
}
