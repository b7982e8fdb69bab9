//! Operator commands against the daemon's state: join tokens, revocations, issued
//! certificates, and `serve` itself. They open the same [`Store`] as the daemon (the SQLite
//! engine's WAL mode lets them write while it runs), through a small runtime of their own.

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;
use ward_identity::SpiffeId;

use crate::authority::error::CaError;
use crate::authority::issuer::rfc3339;
use crate::authority::tokens;
use crate::cli::Error;
use crate::config::state::StateConfig;
use crate::config::CaConfig;
use crate::server;
use crate::state::{unix_now, StateError, Store};

/// Longest a join token may live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);

pub(super) fn when(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

/// The daemon's state as an operator command uses it: each call runs to completion before
/// the command goes on.
pub(super) struct OpState {
    runtime: Option<tokio::runtime::Runtime>,
    pub(super) store: Store,
}

impl Drop for OpState {
    /// Without waiting for the runtime's tasks (a database connection's I/O driver, say): a
    /// runtime may not block while it is dropped inside another one.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl OpState {
    /// Runs one state operation.
    pub(super) fn run<'a, T, F>(&'a self, op: impl FnOnce(&'a Store) -> F) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, StateError>> + Send,
        T: Send,
    {
        let f = op(&self.store);
        self.block(async { f.await.map_err(Error::from) })
    }

    /// Runs `f` to completion on this state's runtime.
    pub(super) fn block<T: Send>(
        &self,
        f: impl std::future::Future<Output = Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        let runtime = self.runtime.as_ref().ok_or(Error::Runtime {
            what: "tokio runtime",
            source: std::io::Error::other("already shut down"),
        })?;
        block_on(runtime, f)
    }
}

/// Runs `f` on `runtime`; on a thread of its own when called from async code (a library user
/// or a test calling an operator command), where blocking the caller's thread is not allowed.
fn block_on<F>(runtime: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(f);
    }
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(f))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A runtime from `builder`, with I/O and timers.
pub(super) fn runtime(
    builder: &mut tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, Error> {
    builder
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime {
            what: "tokio runtime",
            source,
        })
}

pub(super) fn load(config: &std::path::Path) -> Result<(CaConfig, OpState), Error> {
    let cfg = CaConfig::load(config)?;
    let runtime = runtime(&mut tokio::runtime::Builder::new_current_thread())?;
    let store = block_on(&runtime, Store::open(&cfg.state))?;
    Ok((
        cfg,
        OpState {
            runtime: Some(runtime),
            store,
        },
    ))
}

/// `ward-ca state copy`: the SQLite state at `from` into the state `config` names, and with
/// `ca_dir` the CA directory into a database that keeps the CA keys.
pub fn state_copy(
    from: &std::path::Path,
    ca_dir: Option<&std::path::Path>,
    config: &std::path::Path,
    status: &mut dyn Write,
) -> Result<(), Error> {
    if !from.is_file() {
        return Err(Error::Argument {
            flag: "--from",
            value: from.display().to_string(),
            problem: "is not a SQLite state file".into(),
        });
    }
    let (cfg, target) = load(config)?;
    if let StateConfig::Sqlite(path) = &cfg.state {
        if path == from {
            return Err(Error::Argument {
                flag: "--config",
                value: config.display().to_string(),
                problem: "names the same state as --from".into(),
            });
        }
    }
    let ca = super::keys::open(&cfg, &target)?;
    let material = super::keys::check_copy_target(&ca, ca_dir, &cfg, &target)?;
    let source = Store::open_sqlite(from)?;
    let all = target.run(|_| source.snapshot())?;
    let (tokens, certs, revocations) = (all.tokens.len(), all.certs.len(), all.revocations.len());
    target.run(|t| t.import(all.clone()))?;
    let copied = target.run(|t| t.snapshot())?;
    if copied.normalized() != all.normalized() {
        return Err(Error::State(StateError::Commit(
            "the copy does not read back as the source; check the target database".into(),
        )));
    }
    let _ = writeln!(
        status,
        "copied {tokens} join tokens, {certs} certificate records and {revocations} revocations from {} to {}; read back and compared",
        from.display(),
        cfg.state
    );
    if let (Some(material), super::keys::OpCa::Db(db)) = (material, &ca) {
        let version = target.block(async { Ok(db.save(&material, None).await?) })?;
        let _ = writeln!(
            status,
            "copied the CA ({} generation(s), rotation {}) into the database as version {version}, keys sealed under the kek_file",
            material.generations().count(),
            material.journal.phase
        );
    }
    Ok(())
}

/// `ward-ca token create`: prints the token once on `out`.
pub fn token_create(
    config: &std::path::Path,
    id: &str,
    ttl: &str,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let (cfg, state) = load(config)?;
    let id = SpiffeId::parse(id).map_err(|e| Error::Argument {
        flag: "--id",
        value: id.into(),
        problem: e.to_string(),
    })?;
    if !id.is_member_of(&cfg.trust_domain) {
        return Err(Error::Ca(CaError::ForeignId {
            id,
            trust_domain: cfg.trust_domain.to_string(),
        }));
    }
    if !id.is_workload() {
        return Err(Error::Ca(CaError::NotWorkload(id)));
    }
    if cfg.is_reserved(&id) {
        return Err(Error::Argument {
            flag: "--id",
            value: id.to_string(),
            problem: "is reserved (the CA's own ID or an admin ID) and cannot be enrolled with a token; make admin certificates with `ward-ca issue --config`".into(),
        });
    }
    let ttl_value = ward_yaml::parse_duration(ttl).map_err(|p| Error::Argument {
        flag: "--ttl",
        value: ttl.into(),
        problem: p.to_string(),
    })?;
    if ttl_value < Duration::from_secs(60) || ttl_value > MAX_TOKEN_TTL {
        return Err(Error::Argument {
            flag: "--ttl",
            value: ttl.into(),
            problem: "must be between 1m and 30 days".into(),
        });
    }
    let token = tokens::generate()
        .map_err(|_| Error::Ca(CaError::Generate("no randomness from the system".into())))?;
    let now = unix_now();
    let record = token.record(id.as_str(), now, ttl_value.as_secs() as i64);
    state.run(|s| s.create_token(record.clone()))?;
    let _ = writeln!(out, "{}", token.secret);
    let _ = writeln!(
        status,
        "join token {} for {id}, single use, expires {}",
        token.token_id,
        when(record.expires_at)
    );
    Ok(())
}

/// `ward-ca token revoke`.
pub fn token_revoke(
    config: &std::path::Path,
    token_id: &str,
    status: &mut dyn Write,
) -> Result<(), Error> {
    let (_, state) = load(config)?;
    // A used token has done its work: revoking it would change nothing and read as if the
    // workload it enrolled were cut off. Say what does that instead.
    let tokens = state.run(|s| s.tokens())?;
    if let Some(t) = tokens.iter().find(|t| t.token_id == token_id) {
        if let (Some(used), None) = (t.used_at, t.revoked_at) {
            return Err(StateError::Conflict(format!(
                "join token {token_id} was already used at {} to enroll {}: revoking it changes nothing. To cut that workload off, revoke its identity: `ward-ca revoke --config {} --id {}`",
                when(used),
                t.spiffe_id,
                config.display(),
                t.spiffe_id
            ))
            .into());
        }
    }
    state.run(|s| s.revoke_token(token_id, unix_now()))?;
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
) -> Result<(), Error> {
    let (cfg, state) = load(config)?;
    let r = server::api::revocation_from(id, serial, reason, &cfg.trust_domain).map_err(|e| {
        Error::Argument {
            flag: "--id/--serial",
            value: String::new(),
            problem: e.message,
        }
    })?;
    state.run(|s| s.revoke(r.clone()))?;
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

/// `ward-ca serve`: runs until SIGTERM or SIGINT; SIGHUP reloads what can be reloaded and
/// says what needs a restart (never exits on it).
pub fn serve(config: &std::path::Path) -> Result<(), Error> {
    let cfg = CaConfig::load(config)?;
    let runtime = runtime(&mut tokio::runtime::Builder::new_multi_thread())?;
    runtime.block_on(async {
        let signals = ward_daemon::Signals::install().map_err(|source| Error::Runtime {
            what: "signal handler",
            source,
        })?;
        let ca = server::start(cfg).await?;
        signals.serve(|| reload(&ca, config)).await;
        tracing::info!("shutting down: no longer accepting; draining requests in flight");
        ca.shutdown().await;
        tracing::info!("shutdown complete");
        Ok(())
    })
}

async fn reload(ca: &server::RunningCa, config: &std::path::Path) {
    match ca.reload(config).await {
        Ok(done) => {
            let applied = if done.applied.is_empty() {
                "nothing changed".to_owned()
            } else {
                done.applied.join(", ")
            };
            tracing::info!(config = %config.display(), applied = %applied, "SIGHUP: config reloaded");
            if !done.need_restart.is_empty() {
                tracing::warn!(
                    settings = %done.need_restart.join(", "),
                    "SIGHUP: these changed in the file but take effect only after a restart; still running with the old values"
                );
            }
        }
        Err(e) => tracing::error!(
            config = %config.display(),
            error = %e,
            "SIGHUP: reload refused; nothing changed"
        ),
    }
}
