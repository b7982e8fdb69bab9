//! Operator commands against the daemon's state: join tokens, revocations, issued
//! certificates, and `serve` itself. They open the same SQLite file as the daemon (WAL mode
//! lets them write while it runs).

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::signal::unix::{signal, SignalKind};
use ward_identity::SpiffeId;

use crate::config::CaConfig;
use crate::error::CaError;
use crate::issuer::rfc3339;
use crate::server;
use crate::state::queries::{self, TokenRecord};
use crate::state::{self, unix_now};
use crate::tokens;

/// Longest a join token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

pub(super) fn when(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

pub(super) fn load(config: &std::path::Path) -> Result<(CaConfig, rusqlite::Connection), CaError> {
    let cfg = CaConfig::load(config)?;
    let conn = state::open(&cfg.state)?;
    Ok((cfg, conn))
}

pub(super) fn db<T>(r: Result<T, state::StateError>) -> Result<T, CaError> {
    r.map_err(CaError::from)
}

/// `ward-ca token create`: prints the token once on `out`.
pub fn token_create(
    config: &std::path::Path,
    id: &str,
    ttl: &str,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), CaError> {
    let (cfg, conn) = load(config)?;
    let id = SpiffeId::parse(id).map_err(|e| CaError::Argument {
        flag: "--id",
        value: id.into(),
        problem: e.to_string(),
    })?;
    if !id.is_member_of(&cfg.trust_domain) {
        return Err(CaError::ForeignId {
            id,
            trust_domain: cfg.trust_domain.to_string(),
        });
    }
    if !id.is_workload() {
        return Err(CaError::NotWorkload(id));
    }
    if cfg.is_reserved(&id) {
        return Err(CaError::Argument {
            flag: "--id",
            value: id.to_string(),
            problem: "is reserved (the CA's own ID or an admin ID) and cannot be enrolled with a token; make admin certificates with `ward-ca issue --config`".into(),
        });
    }
    let ttl_value = ward_yaml::parse_duration(ttl).map_err(|p| CaError::Argument {
        flag: "--ttl",
        value: ttl.into(),
        problem: p.to_string(),
    })?;
    if ttl_value < Duration::from_secs(60) || ttl_value > MAX_TOKEN_TTL {
        return Err(CaError::Argument {
            flag: "--ttl",
            value: ttl.into(),
            problem: "must be between 1m and 30 days".into(),
        });
    }
    let token = tokens::generate()
        .map_err(|_| CaError::Generate("no randomness from the system".into()))?;
    let now = unix_now();
    let record = TokenRecord {
        hash: token.hash.clone(),
        token_id: token.token_id.clone(),
        spiffe_id: id.to_string(),
        created_at: now,
        expires_at: now + ttl_value.as_secs() as i64,
        used_at: None,
        revoked_at: None,
    };
    db(queries::insert_token(&conn, &record))?;
    let _ = writeln!(out, "{}", token.secret);
    let _ = writeln!(
        status,
        "join token {} for {id}, single use, expires {}",
        token.token_id,
        when(record.expires_at)
    );
    Ok(())
}

/// `ward-ca token list`.
pub fn token_list(config: &std::path::Path, out: &mut dyn Write) -> Result<(), CaError> {
    let (_, conn) = load(config)?;
    let now = unix_now();
    let _ = writeln!(
        out,
        "{:<18} {:<10} {:<22} SPIFFE ID",
        "TOKEN ID", "STATE", "EXPIRES"
    );
    for t in db(queries::list_tokens(&conn))? {
        let state = match (t.revoked_at, t.used_at) {
            (Some(_), _) => "revoked",
            (None, Some(_)) => "used",
            _ if t.expires_at <= now => "expired",
            _ => "unused",
        };
        let _ = writeln!(
            out,
            "{:<18} {:<10} {:<22} {}",
            t.token_id,
            state,
            when(t.expires_at),
            t.spiffe_id
        );
    }
    Ok(())
}

/// `ward-ca token revoke`.
pub fn token_revoke(
    config: &std::path::Path,
    token_id: &str,
    status: &mut dyn Write,
) -> Result<(), CaError> {
    let (_, conn) = load(config)?;
    db(queries::revoke_token(&conn, token_id, unix_now()))?;
    let _ = writeln!(status, "join token {token_id} revoked");
    Ok(())
}

/// `ward-ca revoke`.
pub fn revoke(
    config: &std::path::Path,
    id: Option<String>,
    serial: Option<String>,
    reason: Option<String>,
    status: &mut dyn Write,
) -> Result<(), CaError> {
    let (cfg, conn) = load(config)?;
    let r = server::api::revocation_from(id, serial, reason, &cfg.trust_domain).map_err(|e| {
        CaError::Argument {
            flag: "--id/--serial",
            value: String::new(),
            problem: e.message,
        }
    })?;
    db(queries::insert_revocation(&conn, &r))?;
    // An ID revocation covers what is issued up to its second: return once that second is
    // over, so a token created next re-onboards the ID with a certificate it does not cover.
    while unix_now() <= r.revoked_at {
        std::thread::sleep(Duration::from_millis(20));
    }
    let what = r
        .spiffe_id
        .clone()
        .or(r.serial.clone().map(|s| format!("serial {s}")))
        .unwrap_or_default();
    let _ = writeln!(
        status,
        "revoked {what} ({}); proxies refuse it within one bundle refresh",
        r.reason
    );
    Ok(())
}

/// `ward-ca certs list`.
pub fn certs_list(
    config: &std::path::Path,
    id: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CaError> {
    let (_, conn) = load(config)?;
    let revocations = db(queries::revocations(&conn))?;
    let _ = writeln!(
        out,
        "{:<34} {:<22} {:<11} {:<8} SPIFFE ID",
        "SERIAL", "NOT AFTER", "ATTESTOR", "STATE"
    );
    for c in db(queries::list_certs(&conn, id))? {
        let revoked = revocations
            .iter()
            .any(|r| r.covers(&c.serial, &c.spiffe_id, c.issued_at));
        let state = if revoked {
            "revoked"
        } else if c.not_after <= unix_now() {
            "expired"
        } else {
            "valid"
        };
        let _ = writeln!(
            out,
            "{:<34} {:<22} {:<11} {:<8} {}",
            c.serial,
            when(c.not_after),
            c.attestor,
            state,
            c.spiffe_id
        );
    }
    Ok(())
}

/// `ward-ca serve`: runs until SIGTERM or SIGINT.
/// `ward-ca check`: the config parses and validates; one summary line on success.
pub fn check(config: &std::path::Path, out: &mut dyn Write) -> Result<(), CaError> {
    let cfg = CaConfig::load(config)?;
    let attestors: Vec<&str> = [
        cfg.join_token.then_some("join_token"),
        cfg.kubernetes.as_ref().map(|_| "kubernetes"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let _ = writeln!(
        out,
        "ok: {} (trust domain {}, listen {}, attestors: {}, {} admins)",
        config.display(),
        cfg.trust_domain,
        cfg.listen,
        if attestors.is_empty() {
            "none".to_owned()
        } else {
            attestors.join(", ")
        },
        cfg.admins.len(),
    );
    Ok(())
}

pub fn serve(config: &std::path::Path) -> Result<(), CaError> {
    let cfg = CaConfig::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CaError::Runtime {
            what: "tokio runtime",
            source,
        })?;
    runtime.block_on(async {
        let sig = |k| {
            signal(k).map_err(|source| CaError::Runtime {
                what: "signal handler",
                source,
            })
        };
        let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
        let signalled = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        Ok(server::run(cfg, signalled).await?)
    })
}
