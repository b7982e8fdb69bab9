//! Logging for the daemons: stderr, text or JSON, filtered by `--log-level`, else `WARD_LOG`,
//! else the standard `RUST_LOG` (same syntax for all three, e.g. `ward::access=info,warn`),
//! else `info`; colours only on a terminal.

use clap::{Args, ValueEnum};

/// Log output format (`--log-format`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging flags of every daemon subcommand.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, e.g. `debug` or `ward::access=info,warn`; overrides
    /// the WARD_LOG and RUST_LOG variables.
    #[arg(long, value_name = "FILTER", value_parser = parse_filter)]
    pub log_level: Option<String>,
}

fn parse_filter(v: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(v)
        .map(|_| v.to_owned())
        .map_err(|e| format!("not a log filter: {e}"))
}

/// The log filter directives: the `--log-level` flag if given, else `WARD_LOG` if set, else
/// `RUST_LOG`, else `info`; a variable that does not parse falls back to `info` and says so,
/// rather than logging nothing (the flag is checked when the command line is parsed).
pub fn log_filter(
    flag: Option<&str>,
    ward_log: Option<&str>,
    rust_log: Option<&str>,
) -> (tracing_subscriber::EnvFilter, Option<String>) {
    let chosen = [
        ("--log-level", flag),
        ("WARD_LOG", ward_log),
        ("RUST_LOG", rust_log),
    ]
    .into_iter()
    .find_map(|(name, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (name, v)));
    match chosen {
        None => (tracing_subscriber::EnvFilter::new("info"), None),
        Some((name, v)) => match tracing_subscriber::EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                tracing_subscriber::EnvFilter::new("info"),
                Some(format!(
                    "{name}={v:?} is not a log filter ({e}); logging at info"
                )),
            ),
        },
    }
}

/// Installs the log subscriber on stderr, filtered as [`log_filter`] says.
pub fn init_logging(args: &LogArgs) {
    let ward = std::env::var("WARD_LOG").ok();
    let rust = std::env::var("RUST_LOG").ok();
    let (filter, problem) = log_filter(args.log_level.as_deref(), ward.as_deref(), rust.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn flag_then_ward_log_then_rust_log_then_info() {
        let shown = |flag: Option<&str>, w: Option<&str>, r: Option<&str>| {
            let (f, problem) = log_filter(flag, w, r);
            (f.to_string(), problem.is_some())
        };
        assert_eq!(
            shown(None, Some("debug"), Some("warn")),
            ("debug".into(), false)
        );
        assert_eq!(
            shown(Some("trace"), Some("debug"), Some("warn")),
            ("trace".into(), false)
        );
        assert_eq!(
            shown(None, None, Some("ward::access=info,warn")).0,
            "ward::access=info,warn"
        );
        assert_eq!(
            shown(None, Some(" "), Some("error")),
            ("error".into(), false)
        );
        assert_eq!(shown(None, None, None), ("info".into(), false));
        assert_eq!(shown(None, Some("=][="), None), ("info".into(), true));
    }

    #[test]
    fn a_bad_flag_is_refused_by_the_parser() {
        assert!(super::parse_filter("=][=").is_err());
        assert_eq!(super::parse_filter("ward=debug").unwrap(), "ward=debug");
    }
}
