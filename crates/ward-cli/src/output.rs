//! What the binaries print besides logs: `--output text|json` for listings (the JSON field
//! names are part of the interface, documented with each command), shell completion scripts
//! generated from the command definition itself, and a check that every subcommand's help
//! shows an example.

use std::io::Write;

use clap::{Args, ValueEnum};
use clap_complete::Shell;

/// How a listing is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    #[default]
    Text,
    /// One JSON document (stable field names) for scripts.
    Json,
}

/// The `--output` flag.
#[derive(Clone, Copy, Debug, Args)]
pub struct OutputArg {
    /// Output format: text for people, json for scripts (stable field names).
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

/// Writes `value` as pretty JSON and a newline.
pub fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// Writes the completion script for `shell` of the command `cmd` (named `bin`).
///
/// clap_complete's bash script names a subcommand's state one way where it walks the words
/// (`ward__ca__subcmd__rotate`, from the binary's `-` as `__`) and another in the arms that
/// complete it (`ward__subcmd__ca__subcmd__rotate`, the `-` taken for a subcommand
/// separator), so nothing past the first word ever completed for a hyphenated binary name.
/// The arms are renamed to the form the walk produces.
pub fn completions(shell: Shell, mut cmd: clap::Command, bin: &str, out: &mut dyn Write) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut script);
    if shell == Shell::Bash && bin.contains('-') {
        let text = String::from_utf8_lossy(&script);
        let wrong = format!("{}__subcmd__", bin.replace('-', "__subcmd__"));
        let right = format!("{}__subcmd__", bin.replace('-', "__"));
        script = text.replace(&wrong, &right).into_bytes();
    }
    let _ = out.write_all(&script);
}

/// Subcommands (by full name) whose help shows no `Example` — every one must have one,
/// groups (`rotate`, `token`) as well as the commands under them.
pub fn missing_examples(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, prefix: &str, missing: &mut Vec<String>) {
        let name = format!("{prefix}{}", cmd.get_name());
        let leaves: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if !prefix.is_empty() {
            let shown = cmd
                .get_after_help()
                .or(cmd.get_after_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !shown.contains("Example") {
                missing.push(name.clone());
            }
        }
        for sub in leaves {
            walk(sub, &format!("{name} "), missing);
        }
    }
    let mut missing = Vec::new();
    walk(cmd, "", &mut missing);
    missing
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Subcommand)]
    enum Sub {
        /// Has one.
        #[command(after_help = "Example:\n  demo shown")]
        Shown,
        /// Has none.
        Hidden,
    }

    #[test]
    fn finds_subcommands_without_an_example() {
        assert_eq!(super::missing_examples(&Demo::command()), ["demo hidden"]);
    }

    #[test]
    fn completion_scripts_name_the_subcommands() {
        let mut out = Vec::new();
        super::completions(
            clap_complete::Shell::Bash,
            Demo::command(),
            "demo",
            &mut out,
        );
        let script = String::from_utf8(out).unwrap();
        assert!(
            script.contains("shown") && script.contains("hidden"),
            "{script}"
        );
    }
}
