//! `ward-ca federation bundle|list|show|forget`: the operator's view of federation. `bundle`
//! prints this CA's SPIFFE bundle document (what its bundle endpoint serves; hand it to a
//! partner as their `bundle_file`); `list` and `show` read the foreign bundles the daemon has
//! accepted from the state, so they work while it runs and on any replica's config; `forget`
//! drops one so the next start takes `bundle_file` again (re-bootstrapping a partner whose
//! every key was revoked, or whose endpoint can no longer be authenticated).

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::keys::{self, OpCa};
use super::ops::{load, when};
use crate::authority::error::CaError;
use crate::authority::Authority;
use crate::cli::Error;

/// `ward-ca federation` subcommands.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    #[command(
        after_help = "Example:\n  ward-ca federation bundle --config /etc/ward/ca.yaml > example.org.bundle.json"
    )]
    /// Print this CA's SPIFFE bundle document (roots, and JWT keys with jwt_svid), for a
    /// partner's `bundle_file`.
    Bundle {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
    },
    #[command(
        after_help = "Examples:\n  ward-ca federation list --config /etc/ward/ca.yaml\n  ward-ca federation list --config /etc/ward/ca.yaml --output json"
    )]
    /// The foreign trust domains: configured, and the bundle of each in force.
    List {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// Text or JSON.
        #[command(flatten)]
        output: ward_cli::OutputArg,
    },
    #[command(
        after_help = "Example:\n  ward-ca federation show --config /etc/ward/ca.yaml --trust-domain partner.example"
    )]
    /// One foreign trust domain's bundle document, as accepted.
    Show {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// The foreign trust domain.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
    },
    #[command(
        after_help = "Example (re-bootstrap a partner: its new bundle in bundle_file first):\n  ward-ca federation forget --config /etc/ward/ca.yaml --trust-domain partner.example\n  systemctl restart ward-ca"
    )]
    /// Forget a foreign trust domain's accepted bundle: at the next start the daemon takes
    /// its `bundle_file` again.
    Forget {
        /// Daemon config file.
        #[arg(long, value_name = "FILE", env = "WARD_CA_CONFIG")]
        config: PathBuf,
        /// The foreign trust domain.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
    },
}

/// Runs one `federation` subcommand; documents and tables go to `out`.
pub fn run(command: FederationCommand, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        FederationCommand::Bundle { config } => {
            let (cfg, state) = load(&config)?;
            let td = &cfg.trust_domain;
            let authority = match keys::open(&cfg, &state)? {
                OpCa::Dir(dir) => Authority::load(&dir, td)?,
                OpCa::Db(db) => {
                    let (m, _) = keys::material(&db, &state)?;
                    Authority::from_material(&m, td, &crate::keys::db::DbCa::origin())?
                }
            };
            let mut keys = authority.jwks.clone();
            if cfg.jwt_svid.is_some() {
                keys.extend(authority.jwt_jwks());
            }
            // Sequence 0: any document the endpoint serves later (from 1 up) supersedes it.
            let doc = json!({
                "keys": keys,
                "spiffe_sequence": 0,
                "spiffe_refresh_hint": cfg.bundle_refresh_hint.as_secs(),
            });
            let _ = writeln!(out, "{doc:#}");
        }
        FederationCommand::List { config, output } => list(&config, output.output, out)?,
        FederationCommand::Show {
            config,
            trust_domain,
        } => {
            let (_, state) = load(&config)?;
            let stored = state.run(|s| s.federated_bundles())?;
            let r = stored
                .iter()
                .find(|r| r.trust_domain == trust_domain)
                .ok_or_else(|| Error::Argument {
                    flag: "--trust-domain",
                    value: trust_domain.clone(),
                    problem: "no bundle of this trust domain has been accepted".into(),
                })?;
            let _ = writeln!(out, "{}", r.document);
        }
        FederationCommand::Forget {
            config,
            trust_domain,
        } => {
            let (cfg, state) = load(&config)?;
            let Some(f) = cfg
                .federation
                .federates_with
                .iter()
                .find(|f| f.trust_domain.as_str() == trust_domain)
            else {
                return Err(Error::Argument {
                    flag: "--trust-domain",
                    value: trust_domain,
                    problem: "not a trust domain this CA federates with".into(),
                });
            };
            if !state.run(|s| s.forget_federated(&trust_domain))? {
                let _ = writeln!(
                    out,
                    "no bundle of {trust_domain} was stored; nothing changed"
                );
                return Ok(());
            }
            let next = match &f.bundle_file {
                Some(file) => format!("its bundle_file {}", file.display()),
                None => "its endpoint (no bundle_file: an https_spiffe endpoint cannot be authenticated without one)".into(),
            };
            let _ = writeln!(
                out,
                "forgot the bundle of {trust_domain}; restart every ward-ca serving this state: each takes {next}"
            );
        }
    }
    Ok(())
}

/// One row of `federation list` (the JSON field names are the interface).
#[derive(serde::Serialize)]
struct Row {
    trust_domain: String,
    /// `in_force`, `revoked` (its last bundle had no keys: every key revoked), `none_yet`
    /// (nothing fetched or loaded yet) or `unusable`.
    state: &'static str,
    sequence: Option<i64>,
    refreshed_at: Option<String>,
    roots: Option<usize>,
    jwt_keys: Option<usize>,
    /// Keys of a type or use ward does not verify, left aside.
    ignored_keys: Option<usize>,
    endpoint: String,
    /// Why a stored bundle is unusable.
    problem: Option<String>,
}

fn list(
    config: &std::path::Path,
    output: ward_cli::Output,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (cfg, state) = load(config)?;
    let stored = state.run(|s| s.federated_bundles())?;
    let rows: Vec<Row> = cfg
        .federation
        .federates_with
        .iter()
        .map(|f| {
            let td = &f.trust_domain;
            let mut row = Row {
                trust_domain: td.to_string(),
                state: "none_yet",
                sequence: None,
                refreshed_at: None,
                roots: None,
                jwt_keys: None,
                ignored_keys: None,
                endpoint: f.url.clone(),
                problem: None,
            };
            if let Some(r) = stored.iter().find(|r| r.trust_domain == td.as_str()) {
                match crate::authority::foreign_bundle::parse(td, r.document.as_bytes()) {
                    Ok(b) => {
                        row.state = if b.revokes_all() {
                            "revoked"
                        } else {
                            "in_force"
                        };
                        row.sequence = (r.sequence >= 0).then_some(r.sequence);
                        row.refreshed_at = Some(when(r.refreshed_at));
                        row.roots = Some(b.roots.len());
                        row.jwt_keys = Some(b.jwt_keys.len());
                        row.ignored_keys = Some(b.ignored.len());
                    }
                    Err(e) => {
                        row.state = "unusable";
                        row.problem = Some(e.to_string());
                    }
                }
            }
            row
        })
        .collect();
    if output == ward_cli::Output::Json {
        return ward_cli::print_json(out, &json!({ "federations": rows })).map_err(|source| {
            Error::Ca(CaError::Io {
                path: "<stdout>".into(),
                source,
            })
        });
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let table: Vec<[String; 7]> = std::iter::once(
        [
            "TRUST DOMAIN",
            "STATE",
            "SEQUENCE",
            "REFRESHED",
            "ROOTS",
            "JWT",
            "ENDPOINT",
        ]
        .map(String::from),
    )
    .chain(rows.iter().map(|r| {
        [
            r.trust_domain.clone(),
            r.state.to_owned(),
            dash(r.sequence.map(|s| s.to_string())),
            dash(r.refreshed_at.clone()),
            dash(r.roots.map(|n| n.to_string())),
            dash(r.jwt_keys.map(|n| n.to_string())),
            r.endpoint.clone(),
        ]
    }))
    .collect();
    // Every column as wide as its widest cell, so any trust domain or state lines up.
    let widths: Vec<usize> = (0..7)
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for r in rows.iter().filter(|r| r.state == "revoked") {
        let _ = writeln!(
            out,
            "{}: its endpoint served a bundle with no keys: every key revoked, its workloads refused",
            r.trust_domain
        );
    }
    for r in rows.iter().filter(|r| r.problem.is_some()) {
        let _ = writeln!(
            out,
            "{}: the stored bundle is unusable: {}",
            r.trust_domain,
            dash(r.problem.clone())
        );
    }
    Ok(())
}
