//! `ward-ca rotate status`: where a rotation stands, gathered once into a [`Report`] (from a
//! CA directory or from the database) and printed as text for people or, with `--output
//! json`, as one document whose field names are part of the interface (docs/ca.md).

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use ward_cli::Output;

use super::keys;
use super::ops::{when, OpState};
use super::rotate::{jwt_wait, live_under, next_step};
use crate::authority::error::CaError;
use crate::authority::issuer::{rfc3339, Issuer};
use crate::cli::Error;
use crate::config::CaConfig;
use crate::keys::db::DbCa;
use crate::keys::dir::rotation::{self, Journal, NEXT, PREVIOUS};
use crate::keys::dir::JWT_KEY;
use crate::state::unix_now;

/// One CA generation.
#[derive(Debug, Serialize)]
struct Generation {
    /// `signing`, `next` or `previous`.
    role: String,
    issuer_serial: String,
    not_after: String,
    root_subject: String,
    /// SHA-256 of the root's and the issuer's DER (`openssl x509 -fingerprint -sha256`
    /// prints the same, with colons): what operators compare across replicas and hosts.
    root_sha256: String,
    issuer_sha256: String,
}

/// A CA replica (keys in PostgreSQL only).
#[derive(Debug, Serialize)]
struct Replica {
    name: String,
    ca_version: i64,
    behind: bool,
    seen_seconds_ago: i64,
}

/// Everything `rotate status` says.
#[derive(Debug, Serialize)]
struct Report {
    /// `idle`, `prepared`, `activating` or `activated`.
    phase: rotation::Phase,
    generations: Vec<Generation>,
    bundle_roots: usize,
    bundle_version: u64,
    /// The stored CA version (keys in PostgreSQL), else null.
    ca_version: Option<i64>,
    /// Live replicas (keys in PostgreSQL), else null.
    replicas: Option<Vec<Replica>>,
    /// Certificates of the previous issuer that still matter: unexpired, unrevoked, not
    /// yet renewed (what `finish` waits for; `ward-ca certs list --issuer SERIAL --live`
    /// names them).
    previous_live_certificates: i64,
    /// When the last of them expires.
    previous_live_until: Option<String>,
    /// Until when JWT-SVIDs of the previous key may be valid.
    jwt_live_until: Option<String>,
    /// What to do next, in words.
    next_step: String,
}

fn generation(issuer: &Issuer, role: &str) -> Result<Generation, Error> {
    let (_, root) = x509_parser::parse_x509_certificate(issuer.root()).map_err(|e| {
        Error::Ca(CaError::BadCa {
            path: role.into(),
            problem: e.to_string(),
        })
    })?;
    Ok(Generation {
        role: role.to_owned(),
        root_sha256: ward_tls::files::sha256_hex(issuer.root()),
        issuer_sha256: ward_tls::files::sha256_hex(issuer.issuer_cert()),
        issuer_serial: issuer.issuer_serial().to_owned(),
        not_after: rfc3339(issuer.not_after()),
        root_subject: root.subject().to_string(),
    })
}

fn finish_report(
    journal: &Journal,
    jwt_until: Option<i64>,
    state: &OpState,
    generations: Vec<Generation>,
    bundle_roots: usize,
) -> Result<Report, Error> {
    let previous: Vec<String> = generations
        .iter()
        .filter(|g| g.role == "previous")
        .map(|g| g.issuer_serial.clone())
        .collect();
    let live = live_under(&previous, state)?;
    Ok(Report {
        phase: journal.phase,
        generations,
        bundle_roots,
        bundle_version: journal.bundle_version,
        ca_version: None,
        replicas: None,
        previous_live_certificates: live.0,
        previous_live_until: live.1.filter(|_| live.0 > 0).map(when),
        jwt_live_until: jwt_until.filter(|u| *u > unix_now()).map(when),
        next_step: next_step(
            journal,
            jwt_until,
            live,
            previous.first().map(String::as_str),
        ),
    })
}

/// The report of a CA directory.
pub(super) fn of_dir(
    cfg: &CaConfig,
    dir: &Path,
    state: &OpState,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let journal = Journal::load(dir)?;
    let signing = Issuer::load(dir)?;
    let mut generations = vec![generation(&signing, "signing")?];
    for (sub, role) in [(NEXT, "next"), (PREVIOUS, "previous")] {
        if dir.join(sub).exists() {
            generations.push(generation(&Issuer::load(&dir.join(sub))?, role)?);
        }
    }
    let roots = rotation::bundle_roots(dir)?.len();
    let jwt = jwt_wait(cfg, &journal, dir.join(PREVIOUS).join(JWT_KEY).exists());
    let report = finish_report(&journal, jwt, state, generations, roots)?;
    print(&report, output, out)
}

/// The report of a CA kept in the database, with its replicas.
pub(super) fn of_db(
    cfg: &CaConfig,
    db: &DbCa,
    state: &OpState,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (m, version) = keys::material(db, state)?;
    let mut generations = Vec::new();
    for (role, g) in m.generations() {
        let issuer = Issuer::from_generation(&DbCa::origin().join(role.as_str()), g)?;
        generations.push(generation(&issuer, role.as_str())?);
    }
    let had_key = m.previous.as_ref().is_some_and(|g| g.jwt_key_pem.is_some());
    let jwt = jwt_wait(cfg, &m.journal, had_key);
    let mut report = finish_report(&m.journal, jwt, state, generations, m.roots()?.len())?;
    let now = unix_now();
    let replicas = state.block(async { Ok(db.replicas().await?) })?;
    report.ca_version = Some(version);
    report.replicas = Some(
        replicas
            .into_iter()
            .map(|r| Replica {
                behind: r.ca_version < version,
                name: r.replica,
                ca_version: r.ca_version,
                seen_seconds_ago: now - r.seen_at,
            })
            .collect(),
    );
    print(&report, output, out)
}

fn print(report: &Report, output: Output, out: &mut dyn Write) -> Result<(), Error> {
    if output == Output::Json {
        return ward_cli::print_json(out, report).map_err(|source| {
            Error::Ca(CaError::Io {
                path: "<stdout>".into(),
                source,
            })
        });
    }
    for g in &report.generations {
        let label = format!("{}:", g.role);
        let _ = writeln!(
            out,
            "{label:<9} issuer serial {} valid until {}; root {}\n          root SHA-256 {}\n          issuer SHA-256 {}",
            g.issuer_serial, g.not_after, g.root_subject, g.root_sha256, g.issuer_sha256
        );
    }
    let _ = write!(
        out,
        "bundle:   {} root(s), version {}",
        report.bundle_roots, report.bundle_version
    );
    match (report.ca_version, &report.replicas) {
        (Some(version), Some(replicas)) => {
            let _ = writeln!(out, "; CA version {version} (in the database)");
            let _ = writeln!(out, "replicas: {} live", replicas.len());
            for r in replicas {
                let behind = if r.behind { " (behind)" } else { "" };
                let _ = writeln!(
                    out,
                    "  {} serves version {}{behind} (heard {}s ago)",
                    r.name, r.ca_version, r.seen_seconds_ago
                );
            }
        }
        _ => {
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out, "{}", report.next_step);
    Ok(())
}
