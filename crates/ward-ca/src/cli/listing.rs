//! `ward-ca token list` and `ward-ca certs list`: aligned text for people, or with
//! `--output json` one document whose field names are part of the interface (docs/ca.md):
//! times are RFC 3339 UTC, absent ones `null`, states lowercase words.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use ward_cli::Output;

use super::ops::{load, when};
use crate::authority::error::CaError;
use crate::cli::Error;
use crate::state::unix_now;

/// One join token as `token list --output json` prints it (never the token itself).
#[derive(Debug, Serialize)]
struct TokenRow {
    token_id: String,
    spiffe_id: String,
    /// `unused`, `used`, `revoked` or `expired`.
    state: &'static str,
    created_at: String,
    expires_at: String,
    used_at: Option<String>,
    revoked_at: Option<String>,
}

/// One issued certificate as `certs list --output json` prints it.
#[derive(Debug, Serialize)]
struct CertRow {
    serial: String,
    spiffe_id: String,
    /// `valid`, `renewed` (valid, but replaced by a renewal: it blocks no rotation),
    /// `expired` or `revoked`.
    state: &'static str,
    /// The serial of the issuer (the CA generation) that signed it, when recorded.
    issuer: Option<String>,
    attestor: String,
    /// Who asked: the client's address or the CLI.
    client: String,
    issued_at: String,
    not_before: String,
    not_after: String,
    /// The serial of the certificate a renewal was authenticated with.
    renewed_from: Option<String>,
}

fn emit_json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), Error> {
    ward_cli::print_json(out, value).map_err(|source| {
        Error::Ca(CaError::Io {
            path: "<stdout>".into(),
            source,
        })
    })
}

/// `ward-ca token list`.
pub fn tokens(config: &Path, output: Output, out: &mut dyn Write) -> Result<(), Error> {
    let (_, state) = load(config)?;
    let now = unix_now();
    let rows: Vec<TokenRow> = state
        .run(|s| s.tokens())?
        .into_iter()
        .map(|t| TokenRow {
            state: match (t.revoked_at, t.used_at) {
                (Some(_), _) => "revoked",
                (None, Some(_)) => "used",
                _ if t.expires_at <= now => "expired",
                _ => "unused",
            },
            token_id: t.token_id,
            spiffe_id: t.spiffe_id,
            created_at: when(t.created_at),
            expires_at: when(t.expires_at),
            used_at: t.used_at.map(when),
            revoked_at: t.revoked_at.map(when),
        })
        .collect();
    if output == Output::Json {
        return emit_json(out, &serde_json::json!({ "tokens": rows }));
    }
    let _ = writeln!(
        out,
        "{:<18} {:<10} {:<22} SPIFFE ID",
        "TOKEN ID", "STATE", "EXPIRES"
    );
    for t in rows {
        let _ = writeln!(
            out,
            "{:<18} {:<10} {:<22} {}",
            t.token_id, t.state, t.expires_at, t.spiffe_id
        );
    }
    Ok(())
}

/// `ward-ca certs list`, newest first.
pub fn certs(
    config: &Path,
    id: Option<&str>,
    issuer: Option<&str>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let (_, state) = load(config)?;
    let (revocations, _) = state.run(|s| s.revocations())?;
    let now = unix_now();
    let all = state.run(|s| s.certs(id))?;
    // A renewal names the certificate it was authenticated with (same ID, so in `all`).
    let renewed: std::collections::HashSet<&str> = all
        .iter()
        .filter_map(|c| c.parent_serial.as_deref())
        .collect();
    let rows: Vec<CertRow> = all
        .iter()
        .filter(|c| issuer.is_none_or(|i| c.issuer.as_deref() == Some(i)))
        .cloned()
        .map(|c| CertRow {
            state: if revocations
                .iter()
                .any(|r| r.covers(&c.serial, &c.spiffe_id, c.issued_at))
            {
                "revoked"
            } else if c.not_after <= now {
                "expired"
            } else if renewed.contains(c.serial.as_str()) {
                "renewed"
            } else {
                "valid"
            },
            issuer: c.issuer,
            issued_at: when(c.issued_at),
            not_before: when(c.not_before),
            not_after: when(c.not_after),
            serial: c.serial,
            spiffe_id: c.spiffe_id,
            attestor: c.attestor,
            client: c.client,
            renewed_from: c.parent_serial,
        })
        .collect();
    if output == Output::Json {
        return emit_json(out, &serde_json::json!({ "certificates": rows }));
    }
    let _ = writeln!(
        out,
        "{:<34} {:<22} {:<11} {:<8} {:<34} SPIFFE ID",
        "SERIAL", "NOT AFTER", "ATTESTOR", "STATE", "ISSUER"
    );
    for c in rows {
        let _ = writeln!(
            out,
            "{:<34} {:<22} {:<11} {:<8} {:<34} {}",
            c.serial,
            c.not_after,
            c.attestor,
            c.state,
            c.issuer.as_deref().unwrap_or("-"),
            c.spiffe_id
        );
    }
    Ok(())
}
