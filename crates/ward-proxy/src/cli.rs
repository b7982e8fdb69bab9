//! The `ward-proxy` command line: `run`, `check`, and `policy test`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use ward_cli::Output;
use ward_identity::SpiffeId;
use ward_policy::{Listener, Mode};
use ward_yaml::YamlError;

use crate::config::Config;
use crate::error::ProxyError;
use crate::policy_store;

/// ward's sidecar proxy.
#[derive(Debug, Parser)]
#[command(
    name = "ward-proxy",
    version = ward_cli::LONG_VERSION,
    about = "ward sidecar: mTLS in and out, SPIFFE allow-lists"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `ward-proxy` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy until SIGTERM/SIGINT (SIGHUP reloads policy and identity).
    #[command(
        after_help = "Example:\n  ward-proxy run --config /etc/ward/proxy.yaml --log-format json --log-level info,ward::access=warn"
    )]
    Run {
        /// Config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Logging.
        #[command(flatten)]
        log: ward_cli::LogArgs,
    },
    /// Validate a config file and its policy; print errors as file:line:column.
    #[command(after_help = "Example:\n  ward-proxy check --config /etc/ward/proxy.yaml")]
    Check {
        /// Config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Policy tools.
    Policy {
        /// Policy subcommand.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  ward-proxy completions bash > /etc/bash_completion.d/ward-proxy\n  ward-proxy completions fish > ~/.config/fish/completions/ward-proxy.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: ward_cli::Shell,
    },
}

/// `ward-proxy policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print whether a peer may connect through a listener, and the rule that decided.
    /// Exit status 0 when the connection would be let through, 1 when refused, 2 when it
    /// cannot tell (a broken policy, an unknown listener, a bad ID or request).
    #[command(
        after_help = "Example:\n  ward-proxy policy test --policy /etc/ward/policy.yaml --config /etc/ward/proxy.yaml \\\n    --listener api --from spiffe://example.org/ns/web/sa/frontend --method GET --path /v1/orders"
    )]
    Test {
        /// Policy file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// The peer's SPIFFE ID.
        #[arg(long, value_name = "SPIFFE_ID")]
        from: String,
        /// The inbound listener name.
        #[arg(long, value_name = "NAME")]
        listener: String,
        /// Also check listener names against this proxy config.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The request's method, for per-request rules (HTTP listeners).
        #[arg(long, value_name = "METHOD", requires = "path")]
        method: Option<String>,
        /// The request's path, for per-request rules (normalized as the sidecar does).
        #[arg(long, value_name = "PATH", requires = "method")]
        path: Option<String>,
        /// Text or JSON.
        #[command(flatten)]
        output: ward_cli::OutputArg,
    },
}

/// What a command asks the binary to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1 without an error message (a `policy test` refusal).
    Refused,
}

/// Errors of the command line (printed as one line by `main`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file or the proxy failed.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// A command-line value is invalid.
    #[error("{flag} {value:?}: {problem}")]
    Argument {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// Runtime or signal setup failed.
    #[error("{0}")]
    Runtime(String),
    /// `policy test` could not decide (a broken policy, an unknown listener, a bad request):
    /// exit 2, so a script tells "denied" (1) from "could not tell".
    #[error(transparent)]
    Undecided(Box<CliError>),
}

impl CliError {
    /// The exit status this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Undecided(_) => 2,
            _ => 1,
        }
    }
}

impl From<YamlError> for CliError {
    fn from(e: YamlError) -> Self {
        Self::Proxy(ProxyError::File(e))
    }
}

fn load_policy(
    path: &Path,
    listeners: Option<&[Listener<'_>]>,
) -> Result<policy_store::LoadedPolicy, CliError> {
    let name = path.display().to_string();
    let text = ward_yaml::read_file(path)?;
    match listeners {
        Some(l) => Ok(policy_store::compile(path, &text, l)?),
        None => {
            let policy = ward_policy::compile(&name, &text, None)?;
            Ok(policy_store::LoadedPolicy {
                policy,
                hash: policy_store::sha256_hex(text.as_bytes()),
                loaded_at: 0,
                path: path.to_path_buf(),
            })
        }
    }
}

/// Runs a parsed command; normal output goes to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome, CliError> {
    match cli.command {
        Command::Check { config } => {
            let cfg = Config::load(&config)?;
            let listeners = cfg.policy_listeners();
            let policy = load_policy(&cfg.policy, Some(&listeners))?;
            let _ = writeln!(
                out,
                "ok: {} (trust domain {}, {} inbound, {} outbound); policy {} ({} rules, mode {}, version {})",
                config.display(),
                cfg.trust_domain,
                cfg.inbound.len(),
                cfg.outbound.len(),
                cfg.policy.display(),
                policy.policy.rules.len(),
                if policy.policy.mode == Mode::Audit { "audit" } else { "enforce" },
                &policy.hash[..12],
            );
            if let Some(api) = &cfg.workload_api {
                let _ = writeln!(
                    out,
                    "    Workload API on {} for uids {:?}, gids {:?}",
                    api.socket.display(),
                    api.allowed_uids,
                    api.allowed_gids
                );
            }
            Ok(Outcome::Success)
        }
        Command::Policy {
            command:
                PolicyCommand::Test {
                    policy,
                    from,
                    listener,
                    config,
                    method,
                    path,
                    output,
                },
        } => {
            let request = method.zip(path);
            let asked = Asked {
                policy: &policy,
                from: &from,
                listener: &listener,
                config: config.as_deref(),
            };
            policy_test(asked, request, output.output, out)
                .map_err(|e| CliError::Undecided(Box::new(e)))
        }
        Command::Completions { shell } => {
            ward_cli::completions(
                shell,
                <Cli as clap::CommandFactory>::command(),
                "ward-proxy",
                out,
            );
            Ok(Outcome::Success)
        }
        Command::Run { config, log } => {
            ward_cli::init_logging(&log);
            let cfg = Config::load(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            runtime.block_on(serve(cfg))?;
            Ok(Outcome::Success)
        }
    }
}

/// What `policy test` was asked.
struct Asked<'a> {
    policy: &'a Path,
    from: &'a str,
    listener: &'a str,
    config: Option<&'a Path>,
}

/// `policy test --output json`; the field names are part of the interface (docs/proxy.md).
#[derive(serde::Serialize)]
struct Verdict<'a> {
    /// `allow` or `deny`: what the rules decided.
    decision: &'static str,
    /// The deciding rule's name, or `default-deny`.
    rule: &'a str,
    /// `enforce` or `audit`.
    mode: &'static str,
    /// Whether the sidecar lets the connection (or request) through: an allow, or any
    /// decision in audit mode. The exit status says the same (0 or 1).
    let_through: bool,
    listener: &'a str,
    from: &'a str,
    method: Option<&'a str>,
    path: Option<&'a str>,
    /// True when rules with methods or paths then decide each request on this listener
    /// (and no --method/--path was given).
    per_request_rules: bool,
}

/// `ward-proxy policy test`: the verdict the sidecar would reach, and the deciding rule.
fn policy_test(
    asked: Asked<'_>,
    request: Option<(String, String)>,
    output: Output,
    out: &mut dyn Write,
) -> Result<Outcome, CliError> {
    let Asked {
        policy,
        from,
        listener,
        config,
    } = asked;
    let peer = SpiffeId::parse(from).map_err(|e| CliError::Argument {
        flag: "--from",
        value: from.to_owned(),
        problem: e.to_string(),
    })?;
    let cfg = config.map(Config::load).transpose()?;
    let known = cfg.as_ref().map(Config::policy_listeners);
    let this = match &known {
        None => None,
        Some(known) => Some(known.iter().find(|l| l.name == listener).ok_or_else(|| {
            let names: Vec<&str> = known.iter().map(|l| l.name).collect();
            CliError::Argument {
                flag: "--listener",
                value: listener.to_owned(),
                problem: format!(
                    "not an inbound listener of the config ({})",
                    names.join(", ")
                ),
            }
        })?),
    };
    let loaded = load_policy(policy, known.as_deref())?;
    let verdict = match &request {
        None => loaded.policy.evaluate(&peer, listener),
        Some((method, raw_path)) => {
            if this.is_some_and(|l| !l.http) {
                return Err(CliError::Argument {
                    flag: "--method/--path",
                    value: listener.to_owned(),
                    problem: "this listener is protocol tcp; requests are not seen".into(),
                });
            }
            let path =
                ward_policy::http::normalize_path(raw_path).map_err(|e| CliError::Argument {
                    flag: "--path",
                    value: raw_path.clone(),
                    problem: format!("{e} (the sidecar answers 400)"),
                })?;
            let facts = ward_policy::http::RequestFacts {
                method,
                path: &path,
            };
            loaded.policy.evaluate_request(&peer, listener, &facts)
        }
    };
    let word = if matches!(verdict.decision, ward_policy::Decision::Allow { .. }) {
        "allow"
    } else {
        "deny"
    };
    let audit = if verdict.outcome() == ward_policy::Outcome::AuditDeny {
        "; mode is audit, so it is logged and let through"
    } else {
        ""
    };
    let per_request = request.is_none()
        && loaded.policy.rules.iter().any(|r| {
            r.is_per_request()
                && r.listeners
                    .as_ref()
                    .is_some_and(|ls| ls.iter().any(|l| l == listener))
        });
    let note = if per_request {
        "; rules with methods or paths then decide each request (pass --method and --path)"
    } else {
        ""
    };
    if output == Output::Json {
        let shown = Verdict {
            decision: word,
            rule: verdict.rule(),
            mode: if loaded.policy.mode == Mode::Audit {
                "audit"
            } else {
                "enforce"
            },
            let_through: verdict.permits(),
            listener,
            from,
            method: request.as_ref().map(|(m, _)| m.as_str()),
            path: request.as_ref().map(|(_, p)| p.as_str()),
            per_request_rules: per_request,
        };
        ward_cli::print_json(out, &shown)
            .map_err(|e| CliError::Runtime(format!("writing the verdict: {e}")))?;
    } else {
        let _ = writeln!(out, "{word} (rule: {}){audit}{note}", verdict.rule());
    }
    Ok(if verdict.permits() {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

async fn serve(config: Config) -> Result<(), CliError> {
    let sig = |kind| signal(kind).map_err(|e| CliError::Runtime(format!("signal handler: {e}")));
    let (mut hup, mut term, mut int) = (
        sig(SignalKind::hangup())?,
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
    );
    let proxy = crate::start(config).await?;
    ward_daemon::notify::ready();
    let watchdog = ward_daemon::notify::watchdog();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading policy and identity");
                ward_daemon::notify::reloading();
                proxy.reload();
                ward_daemon::notify::ready();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    ward_daemon::notify::stopping();
    tracing::info!("shutting down: no longer accepting; draining open connections");
    proxy.shutdown().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!("shutdown complete");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_subcommand_shows_an_example() {
        let missing = ward_cli::missing_examples(&super::Cli::command());
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}
