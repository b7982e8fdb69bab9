//! From policy YAML to a [`Policy`], with every mistake located in the file.

use std::collections::HashMap;

use serde::Deserialize;
use ward_identity::IdPattern;
use ward_yaml::{Location, Spanned, YamlError};

use crate::model::{Action, Mode, Policy, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Spanned<String>,
    #[serde(default)]
    action: Action,
    from: Spanned<Vec<Spanned<String>>>,
    to: Option<Spanned<ToFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToFile {
    listeners: Vec<Spanned<String>>,
}

/// Compiles policy `text` (named `file` in errors). When `listeners` is given, every listener
/// a rule names must be one of them.
pub fn compile(file: &str, text: &str, listeners: Option<&[&str]>) -> Result<Policy, YamlError> {
    let raw: PolicyFile = ward_yaml::from_str(file, text)?;
    let at = |loc: &Location, msg: String| YamlError::at(file, loc.line(), loc.column(), msg);
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.rules.len());
    for r in raw.rules {
        let name = r.name.value.trim().to_owned();
        if name.is_empty() {
            return Err(at(&r.name.referenced, "rule name must not be empty".into()));
        }
        if let Some(line) = seen.insert(name.clone(), r.name.referenced.line()) {
            return Err(at(
                &r.name.referenced,
                format!("duplicate rule name {name:?} (first used on line {line})"),
            ));
        }
        if r.from.value.is_empty() {
            return Err(at(
                &r.from.referenced,
                format!("rule {name:?}: `from` must list at least one SPIFFE ID or pattern"),
            ));
        }
        let from = r
            .from
            .value
            .iter()
            .map(|p| {
                IdPattern::parse(&p.value).map_err(|e| {
                    at(
                        &p.referenced,
                        format!(
                            "rule {name:?}: invalid SPIFFE ID pattern {:?}: {e}",
                            p.value
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let listeners = match r.to {
            None => None,
            Some(to) => {
                if to.value.listeners.is_empty() {
                    return Err(at(
                        &to.referenced,
                        format!(
                            "rule {name:?}: `to.listeners` is empty; list listeners or omit `to`"
                        ),
                    ));
                }
                for l in &to.value.listeners {
                    if let Some(known) = listeners {
                        if !known.contains(&l.value.as_str()) {
                            return Err(at(
                                &l.referenced,
                                format!(
                                    "rule {name:?}: unknown listener {:?} (inbound listeners: {})",
                                    l.value,
                                    if known.is_empty() {
                                        "none".to_owned()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            ));
                        }
                    }
                }
                Some(to.value.listeners.into_iter().map(|l| l.value).collect())
            }
        };
        rules.push(Rule {
            name,
            action: r.action,
            from,
            listeners,
        });
    }
    Ok(Policy {
        mode: raw.mode,
        rules,
    })
}
