//! The `ward.dev/*` annotations a pod template (or its namespace) sets, each validated with a
//! message naming the document, the annotation and what is wrong; an unknown `ward.dev/` key
//! is refused too, since a typo would otherwise be silently ignored.

use std::collections::BTreeMap;

use serde_json::Value;

/// `ward.dev/inject`: `enabled` or `disabled`.
pub const INJECT: &str = "ward.dev/inject";
/// Set on what was injected (by ward-inject, with its version).
pub const INJECTED: &str = "ward.dev/injected";

/// Why a document cannot be injected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{document}: annotation {key}: {problem}")]
pub struct AnnotationError {
    /// `Deployment ns/name`.
    pub document: String,
    /// The annotation.
    pub key: String,
    /// What is wrong with its value.
    pub problem: String,
}

/// What is wrong with one value (the caller adds which document and annotation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Problem(pub String);

impl From<String> for Problem {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How an inbound port is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Bytes, authorized per connection.
    Tcp,
    /// HTTP, authorized per request.
    Http,
}

/// What the annotations ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `ward.dev/inbound-ports`: `8080/http,9000` (tcp by default).
    pub inbound: Vec<(u16, Protocol)>,
    /// `ward.dev/policy`: the ConfigMap holding `policy.yaml`.
    pub policy: Option<String>,
    /// `ward.dev/skip-ports`: never intercepted.
    pub skip_ports: Vec<u16>,
    /// `ward.dev/skip-cidrs`: destinations never intercepted.
    pub skip_cidrs: Vec<String>,
    /// `ward.dev/proxy-cpu`, `ward.dev/proxy-memory`: the sidecar's requests (and limits).
    pub cpu: Option<String>,
    /// See `cpu`.
    pub memory: Option<String>,
    /// `ward.dev/log-level`.
    pub log_level: Option<String>,
}

const KEYS: [&str; 9] = [
    INJECT,
    INJECTED,
    "ward.dev/inbound-ports",
    "ward.dev/policy",
    "ward.dev/skip-ports",
    "ward.dev/skip-cidrs",
    "ward.dev/proxy-cpu",
    "ward.dev/proxy-memory",
    "ward.dev/log-level",
];

/// Checks `ADDR/BITS` or `ADDR` as ward-intercept will when it installs the rules.
pub fn cidr(text: &str) -> Result<(), Problem> {
    ward_intercept::rules::family(text)
        .map(|_| ())
        .map_err(|e| Problem(e.to_string()))
}

fn port(text: &str) -> Result<u16, Problem> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Problem(format!("{:?} is not a port (1-65535)", text.trim())))
}

/// A Kubernetes resource quantity, loosely: digits, an optional fraction, a known suffix.
fn quantity(text: &str) -> Result<String, Problem> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    let ok = !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|v| v > 0.0)
        && ["", "m", "k", "M", "G", "Ki", "Mi", "Gi"].contains(&suffix);
    ok.then(|| text.to_owned())
        .ok_or_else(|| Problem(format!("{text:?} is not a quantity (100m, 64Mi)")))
}

fn dns_label(text: &str) -> Result<String, Problem> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !text.starts_with('-')
        && !text.ends_with('-');
    ok.then(|| text.to_owned())
        .ok_or_else(|| Problem(format!("{text:?} is not a ConfigMap name")))
}

fn list<T>(text: &str, item: impl Fn(&str) -> Result<T, Problem>) -> Result<Vec<T>, Problem> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

/// The annotations of a pod template, validated.
pub fn settings(
    document: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<Settings, AnnotationError> {
    let err = |key: &str, problem: String| AnnotationError {
        document: document.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let mut s = Settings::default();
    for (key, value) in annotations {
        if !key.starts_with("ward.dev/") {
            continue;
        }
        let v = value.as_str();
        let parsed: Result<(), Problem> = match key.as_str() {
            k if !KEYS.contains(&k) => Err(Problem(format!(
                "unknown; ward.dev/ annotations are {}",
                KEYS.join(", ")
            ))),
            INJECT => match v {
                "enabled" | "disabled" => Ok(()),
                _ => Err(Problem(format!("{v:?}: use enabled or disabled"))),
            },
            INJECTED => Ok(()),
            "ward.dev/inbound-ports" => list(v, |p| {
                let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let proto = match proto {
                    "tcp" => Protocol::Tcp,
                    "http" => Protocol::Http,
                    other => {
                        return Err(Problem(format!("{other:?}: the protocol is tcp or http")))
                    }
                };
                Ok((port(n)?, proto))
            })
            .map(|ports| s.inbound = ports),
            "ward.dev/policy" => dns_label(v).map(|p| s.policy = Some(p)),
            "ward.dev/skip-ports" => list(v, port).map(|p| s.skip_ports = p),
            "ward.dev/skip-cidrs" => {
                list(v, |c| cidr(c).map(|()| c.to_owned())).map(|c| s.skip_cidrs = c)
            }
            "ward.dev/proxy-cpu" => quantity(v).map(|q| s.cpu = Some(q)),
            "ward.dev/proxy-memory" => quantity(v).map(|q| s.memory = Some(q)),
            "ward.dev/log-level" => match v {
                "error" | "warn" | "info" | "debug" | "trace" => {
                    s.log_level = Some(v.to_owned());
                    Ok(())
                }
                _ => Err(Problem(format!(
                    "{v:?}: use error, warn, info, debug or trace"
                ))),
            },
            _ => Ok(()),
        };
        parsed.map_err(|problem| err(key, problem.0))?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (p, _) in &s.inbound {
        if !seen.insert(*p) {
            return Err(err(
                "ward.dev/inbound-ports",
                format!("port {p} is named twice"),
            ));
        }
    }
    if !s.inbound.is_empty() && s.policy.is_none() {
        return Err(err(
            "ward.dev/inbound-ports",
            "needs ward.dev/policy, the ConfigMap with the policy.yaml that says who may call (default deny)".into(),
        ));
    }
    Ok(s)
}

/// A string map (`metadata.annotations` or `.labels`) from a manifest value.
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
