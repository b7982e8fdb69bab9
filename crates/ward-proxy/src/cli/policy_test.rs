//! `ward-proxy policy test`: the verdict the sidecar would reach for a peer (and, on HTTP
//! listeners, a request), the deciding rule, as text or JSON; exit 0 let through, 1 refused,
//! and (through [`super::CliError::Undecided`]) 2 when it cannot tell.

use std::io::Write;
use std::path::Path;

use ward_cli::Output;
use ward_identity::SpiffeId;
use ward_policy::{Listener, Mode};

use super::{CliError, Outcome};
use crate::config::Config;
use crate::policy_store;

pub(super) fn load_policy(
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

/// What `policy test` was asked.
pub(super) struct Asked<'a> {
    pub policy: &'a Path,
    pub from: &'a str,
    pub listener: &'a str,
    pub config: Option<&'a Path>,
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
pub(super) fn policy_test(
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
    // Without the config, what the listener is can be known only from the rules that name it.
    let naming: Vec<_> = loaded
        .policy
        .rules
        .iter()
        .filter(|r| {
            r.listeners
                .as_ref()
                .is_some_and(|ls| ls.iter().any(|l| l == listener))
        })
        .collect();
    if known.is_none() && naming.is_empty() {
        return Err(CliError::Argument {
            flag: "--listener",
            value: listener.to_owned(),
            problem: "no rule of the policy names it, so whether the sidecar has it cannot be told; pass --config with the sidecar's config".into(),
        });
    }
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
            // A rule with methods or paths on it is accepted only on an HTTP listener.
            if known.is_none() && !naming.iter().any(|r| r.is_per_request()) {
                return Err(CliError::Argument {
                    flag: "--method/--path",
                    value: listener.to_owned(),
                    problem: "whether this listener speaks HTTP cannot be told from the policy (no rule on it names methods or paths); pass --config with the sidecar's config".into(),
                });
            }
            ward_policy::http::check_method(method).map_err(|e| CliError::Argument {
                flag: "--method",
                value: method.clone(),
                problem: format!("{e} (the sidecar answers 400 bad_method)"),
            })?;
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
