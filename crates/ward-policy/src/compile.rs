//! From policy YAML to a [`Policy`], with every mistake located in the file.

use std::collections::HashMap;

use serde::Deserialize;
use ward_identity::IdPattern;
use ward_yaml::{Location, Spanned, YamlError};

use crate::http::{check_method, PathPattern, RuleValueError};
use crate::model::{Action, Mode, Policy, Rule};

/// An inbound listener that rules may name, and whether it speaks HTTP (only then may rules
/// name methods and paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener<'a> {
    /// The listener's name in the proxy config.
    pub name: &'a str,
    /// `protocol: http`.
    pub http: bool,
}

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
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Compiles policy `text` (named `file` in errors). When `listeners` is given, every listener
/// a rule names must be one of them, and a rule that names methods or paths may only name
/// HTTP listeners.
pub fn compile(
    file: &str,
    text: &str,
    listeners: Option<&[Listener<'_>]>,
) -> Result<Policy, YamlError> {
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
        let (listeners, methods, paths) = match r.to {
            None => (None, None, None),
            Some(to) => {
                if to.value.listeners.is_empty() {
                    return Err(at(
                        &to.referenced,
                        format!(
                            "rule {name:?}: `to.listeners` is empty; list listeners or omit `to`"
                        ),
                    ));
                }
                let per_request = to.value.methods.is_some() || to.value.paths.is_some();
                for l in &to.value.listeners {
                    let Some(known) = listeners else { continue };
                    let Some(found) = known.iter().find(|k| k.name == l.value) else {
                        let names: Vec<&str> = known.iter().map(|k| k.name).collect();
                        return Err(at(
                            &l.referenced,
                            format!(
                                "rule {name:?}: unknown listener {:?} (inbound listeners: {})",
                                l.value,
                                if names.is_empty() {
                                    "none".to_owned()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        ));
                    };
                    if per_request && !found.http {
                        return Err(at(
                            &l.referenced,
                            format!(
                                "rule {name:?}: `methods` and `paths` need an HTTP listener, and {:?} is `protocol: tcp`",
                                l.value
                            ),
                        ));
                    }
                }
                let methods = match to.value.methods {
                    None => None,
                    Some(ms) => Some(request_list(&name, "methods", ms, &at, |m| {
                        check_method(m).map(|()| m.to_owned())
                    })?),
                };
                let paths = match to.value.paths {
                    None => None,
                    Some(ps) => Some(request_list(&name, "paths", ps, &at, PathPattern::parse)?),
                };
                let names = to.value.listeners.into_iter().map(|l| l.value).collect();
                (Some(names), methods, paths)
            }
        };
        rules.push(Rule {
            name,
            action: r.action,
            from,
            listeners,
            methods,
            paths,
        });
    }
    Ok(Policy {
        mode: raw.mode,
        rules,
    })
}

/// Parses a non-empty `to.methods` / `to.paths` list, locating the first bad entry.
fn request_list<T>(
    rule: &str,
    key: &str,
    list: Spanned<Vec<Spanned<String>>>,
    at: &impl Fn(&Location, String) -> YamlError,
    parse: impl Fn(&str) -> Result<T, RuleValueError>,
) -> Result<Vec<T>, YamlError> {
    if list.value.is_empty() {
        return Err(at(
            &list.referenced,
            format!("rule {rule:?}: `to.{key}` is empty; list some or omit it"),
        ));
    }
    list.value
        .iter()
        .map(|v| {
            parse(&v.value).map_err(|e| {
                at(
                    &v.referenced,
                    format!("rule {rule:?}: {key}: {:?}: {e}", v.value),
                )
            })
        })
        .collect()
}
