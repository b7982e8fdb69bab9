//! `ward-intercept`: installs, prints or removes the interception rules of a pod (see
//! [`rules`]). It runs as the pod's init container, the only container with `NET_ADMIN`, and
//! exits when the rules are in: the rules then live in the pod's network namespace, owned by
//! the kernel, with nothing left running that could change them. It drives Debian's `nft`
//! (shipped in its image) rather than speaking netlink itself: `nft -f` applies the whole
//! ruleset as one transaction and reports errors in nftables' own words.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand};
use ward_intercept::rules;

#[derive(Parser, Debug)]
#[command(
    name = "ward-intercept",
    version,
    about = "A pod's traffic through its ward-proxy sidecar (nftables)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install the rules (replacing any earlier ones: a rerun is harmless).
    Apply(PlanArgs),
    /// Print the ruleset `apply` would install.
    Print(PlanArgs),
    /// Remove the rules.
    Remove {
        /// The nft program.
        #[arg(long, default_value = "nft")]
        nft: String,
    },
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// The sidecar's uid (its own connections are never redirected).
    #[arg(long)]
    proxy_uid: u32,
    /// The sidecar's transparent inbound listener port.
    #[arg(long, default_value_t = 15006)]
    inbound_port: u16,
    /// The sidecar's transparent outbound listener port.
    #[arg(long, default_value_t = 15001)]
    outbound_port: u16,
    /// An app port whose inbound connections go through the sidecar, to --inbound-port or,
    /// as PORT:LISTENER, to that sidecar port (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', value_parser = app_port)]
    app_port: Vec<(u16, Option<u16>)>,
    /// A destination range whose outbound connections go through the sidecar: the pod and
    /// Service ranges of the mesh (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    mesh_cidr: Vec<String>,
    /// A port never redirected either way.
    #[arg(long, value_delimiter = ',')]
    skip_port: Vec<u16>,
    /// A destination range never redirected.
    #[arg(long, value_delimiter = ',')]
    skip_cidr: Vec<String>,
    /// The nft program.
    #[arg(long, default_value = "nft")]
    nft: String,
}

/// `8080` or `8080:15100` (clap's value parser, so its error is clap's usage line).
fn app_port(text: &str) -> Result<(u16, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    match text.split_once(':') {
        Some((app, listener)) => Ok((port(app)?, Some(port(listener)?))),
        None => Ok((port(text)?, None)),
    }
}

impl PlanArgs {
    fn plan(&self) -> rules::Plan {
        rules::Plan {
            proxy_uid: self.proxy_uid,
            inbound_port: self.inbound_port,
            outbound_port: self.outbound_port,
            app_ports: self.app_port.clone(),
            mesh: self.mesh_cidr.clone(),
            skip_ports: self.skip_port.clone(),
            skip: self.skip_cidr.clone(),
        }
    }
}

/// Why the rules are not in.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Plan(#[from] rules::PlanError),
    #[error("cannot run {program}: {source}")]
    Run {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} refused the ruleset: {message}")]
    Refused { program: String, message: String },
}

/// Runs `nft -f -` with `ruleset` on stdin; nft's own message when it refuses.
fn nft(program: &str, ruleset: &str) -> Result<(), Error> {
    let run = |source| Error::Run {
        program: program.to_owned(),
        source,
    };
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(run)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).map_err(run)?;
    }
    let out = child.wait_with_output().map_err(run)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Refused {
            program: program.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Print(args) => args.plan().ruleset().map_err(Error::from).map(|r| {
            let _ = std::io::stdout().write_all(r.as_bytes());
        }),
        Cmd::Apply(args) => args.plan().ruleset().map_err(Error::from).and_then(|r| {
            nft(&args.nft, &r)?;
            let _ = writeln!(
                std::io::stderr(),
                "ward-intercept: rules installed (table inet ward): app ports {:?} -> :{}, mesh {:?} -> :{}, uid {} exempt",
                args.app_port, args.inbound_port, args.mesh_cidr, args.outbound_port, args.proxy_uid
            );
            Ok(())
        }),
        Cmd::Remove { nft: program } => nft(
            program,
            "add table inet ward\ndelete table inet ward\n",
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ward-intercept: error: {e}");
            ExitCode::FAILURE
        }
    }
}
