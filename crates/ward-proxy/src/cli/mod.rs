//! The `ward-proxy` command line: `run` (with the signal loop: SIGHUP reloads, SIGTERM
//! drains, systemd hears each), `check`, `completions`, and `policy test` ([`policy_test`]).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ward_yaml::YamlError;

use crate::config::Config;
use crate::error::ProxyError;

mod policy_test;

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
        /// Where the config is.
        #[command(flatten)]
        config: ConfigSource,
        /// Logging.
        #[command(flatten)]
        log: ward_cli::LogArgs,
    },
    /// Validate a config file and its policy; print errors as file:line:column.
    #[command(after_help = "Example:\n  ward-proxy check --config /etc/ward/proxy.yaml")]
    Check {
        /// Where the config is.
        #[command(flatten)]
        config: ConfigSource,
    },
    #[command(
        after_help = "Example:\n  ward-proxy policy test --config proxy.yaml --policy policy.yaml --from spiffe://example.org/ns/web/sa/frontend --listener api"
    )]
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

/// Runs a parsed command; normal output goes to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome, CliError> {
    match cli.command {
        Command::Check { config } => {
            let cfg = config.load()?;
            let listeners = cfg.policy_listeners();
            let policy = policy_test::load_policy(&cfg.policy, Some(&listeners))?;
            let _ = writeln!(
                out,
                "ok: {} (trust domain {}, {} inbound, {} outbound); policy {} ({} rules, mode {}, version {})",
                cfg.source.display(),
                cfg.trust_domain,
                cfg.inbound.len(),
                cfg.outbound.len(),
                cfg.policy.display(),
                policy.policy.rules.len(),
                policy.policy.mode,
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
            let asked = policy_test::Asked {
                policy: &policy,
                from: &from,
                listener: &listener,
                config: config.as_deref(),
            };
            policy_test::policy_test(asked, request, output.output, out)
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
            let cfg = config.load()?;
            // Accept loops, reloads, renewal and the admin server: connections are served on
            // the connection workers (`workers`), which have threads of their own.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            runtime.block_on(serve(cfg))?;
            Ok(Outcome::Success)
        }
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    let signals = ward_daemon::Signals::install()
        .map_err(|e| CliError::Runtime(format!("signal handler: {e}")))?;
    let proxy = crate::start(config).await?;
    signals
        .serve(|| {
            tracing::info!("SIGHUP: reloading policy and identity");
            proxy.reload();
            std::future::ready(())
        })
        .await;
    tracing::info!("shutting down: no longer accepting; draining open connections");
    proxy.shutdown().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// `--config FILE` or `--config-env VAR`, exactly one (`run` and `check`).
#[derive(Debug, Args)]
pub struct ConfigSource {
    /// Config file.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "config_env",
        conflicts_with = "config_env"
    )]
    config: Option<PathBuf>,
    /// Read the config from this environment variable instead (an injected sidecar's:
    /// ward-inject writes it into the pod spec); relative paths are from `/`.
    #[arg(long, value_name = "VAR")]
    config_env: Option<String>,
}

impl ConfigSource {
    /// The config it names.
    fn load(&self) -> Result<Config, YamlError> {
        match (&self.config, &self.config_env) {
            (Some(file), _) => Config::load(file),
            (None, Some(var)) => Config::from_env(var),
            (None, None) => Err(YamlError::whole_file(
                "ward-proxy",
                "give --config FILE or --config-env VAR",
            )),
        }
    }
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
