//! The proxy config file: parsed once, at the edge, into typed values.
//!
//! Unknown keys are refused by name; every value with rules (trust domain, addresses, IDs,
//! durations) is checked here and reported as `file:line:column`. Relative paths are taken
//! relative to the config file's directory. Outbound listeners accept plaintext, so they must
//! bind a loopback address unless `allow_non_loopback: true` says otherwise explicitly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use ward_identity::{IdPattern, TrustDomain};
use ward_yaml::{Location, Spanned, YamlError};

pub use crate::identity_config::IdentityConfig;
pub use crate::limits::Limits;

/// What a listener carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Bytes, relayed as they are; policy decides per connection.
    #[default]
    Tcp,
    /// HTTP/1.1 or HTTP/2; policy decides per request (method and path).
    Http,
}

/// What an HTTP inbound listener does with request headers whose names contain `_` (as
/// Envoy's `headers_with_underscores_action`). CGI and WSGI servers map `_` and `-` to the
/// same variable, so `x_forwarded_client_cert` would read as the sidecar's own XFCC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    /// Remove them before forwarding (the default).
    #[default]
    Drop,
    /// Refuse the request with 400.
    Reject,
    /// Forward them (for apps that need them and do not fold `_` into `-`).
    Allow,
}

/// A listener that terminates mTLS and forwards plaintext to the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundConfig {
    /// Name used in policy rules, metrics and logs.
    pub name: String,
    /// `tcp` or `http`.
    pub protocol: Protocol,
    /// Address to accept mTLS on.
    pub listen: SocketAddr,
    /// The app's address, `host:port` (empty when `transparent`).
    pub forward: String,
    /// Redirected connections: forward to `127.0.0.1:<the port the caller dialled>`.
    pub transparent: bool,
    /// HTTP listeners: headers with `_` in their names.
    pub headers_with_underscores: UnderscoreHeaders,
    /// TCP listeners: a PROXY protocol header to the app, if any.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// HTTP listeners: `x-forwarded-for` replaced or appended to.
    pub x_forwarded_for: ForwardedFor,
    /// TLS key-exchange groups accepted, the client's preference deciding among them.
    pub key_exchange: ward_tls::KeyExchange,
}

/// `proxy_protocol:` on a TCP inbound listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// A PROXY protocol v2 header (binary, with TLVs) before the connection's first byte.
    V2,
}

/// `x_forwarded_for:` on an HTTP inbound listener: what becomes of an `x-forwarded-for` (and
/// `x-forwarded-proto`) the caller sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedFor {
    /// Replaced by the connection's own address (the default: the caller's is unverified).
    #[default]
    Replace,
    /// The connection's address is appended to the caller's list (a caller that is itself a
    /// trusted gateway, whose list the app wants).
    Append,
}

/// A listener that accepts plaintext from the app and originates mTLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Name used in metrics and logs.
    pub name: String,
    /// `tcp` or `http`.
    pub protocol: Protocol,
    /// Local address the app connects to.
    pub listen: SocketAddr,
    /// The upstream sidecar, `host:port` (empty when `transparent`).
    pub upstream: String,
    /// Who the upstream must be (when `transparent`, the default for unmapped destinations).
    pub server_id: IdPattern,
    /// Redirected connections: to the address the app dialled (see [`crate::transparent`]).
    pub transparent: Option<crate::transparent::TransparentOutbound>,
    /// TLS key-exchange groups offered, most preferred first.
    pub key_exchange: ward_tls::KeyExchange,
}

/// A validated proxy configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The config file it came from.
    pub source: PathBuf,
    /// The trust domain this workload belongs to and trusts.
    pub trust_domain: TrustDomain,
    /// Identity source.
    pub identity: IdentityConfig,
    /// Policy file.
    pub policy: PathBuf,
    /// mTLS-terminating listeners.
    pub inbound: Vec<InboundConfig>,
    /// mTLS-originating listeners.
    pub outbound: Vec<OutboundConfig>,
    /// Admin (health, metrics) address.
    pub admin: SocketAddr,
    /// Connection limits.
    pub limits: Limits,
    /// How often watched files are checked for changes.
    pub reload_interval: Duration,
    /// Resume TLS 1.3 sessions between sidecars (TCP listeners; see ward-tls `session`).
    pub session_resumption: bool,
    /// The SPIFFE Workload API for the app, if served.
    pub workload_api: Option<ward_workload::WorkloadApiConfig>,
    /// Connection worker threads (each a single-threaded runtime; connections are dealt to
    /// them in turn). Default: the CPUs this process may use.
    pub workers: usize,
}

/// The most connection worker threads a sidecar runs.
const MAX_WORKERS: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    trust_domain: Spanned<String>,
    identity: Spanned<crate::identity_config::IdentityFile>,
    policy: String,
    #[serde(default)]
    inbound: Vec<InboundFile>,
    #[serde(default)]
    outbound: Vec<OutboundFile>,
    admin: Option<Spanned<String>>,
    #[serde(default)]
    limits: crate::limits::LimitsFile,
    reload_interval: Option<Spanned<ward_yaml::Duration>>,
    #[serde(default = "yes")]
    session_resumption: bool,
    workload_api: Option<Spanned<ward_workload::WorkloadApiConfig>>,
    workers: Option<Spanned<usize>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundFile {
    name: Spanned<String>,
    #[serde(default)]
    protocol: Protocol,
    listen: Spanned<String>,
    forward: Option<Spanned<String>>,
    #[serde(default)]
    transparent: bool,
    headers_with_underscores: Option<Spanned<UnderscoreHeaders>>,
    proxy_protocol: Option<Spanned<ProxyProtocol>>,
    x_forwarded_for: Option<Spanned<ForwardedFor>>,
    #[serde(default)]
    key_exchange: crate::key_exchange::KeyExchangeFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundFile {
    name: Spanned<String>,
    #[serde(default)]
    protocol: Protocol,
    listen: Spanned<String>,
    upstream: Option<Spanned<String>>,
    server_id: Option<Spanned<String>>,
    transparent: Option<Spanned<crate::transparent::TransparentFile>>,
    #[serde(default)]
    allow_non_loopback: bool,
    #[serde(default)]
    key_exchange: crate::key_exchange::KeyExchangeFile,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        let text = ward_yaml::read_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(path, &text, base)
    }

    /// Reads and validates the config held by environment variable `var` (an injected
    /// sidecar's); errors name `$VAR`, and relative paths are from `/`.
    pub fn from_env(var: &str) -> Result<Self, YamlError> {
        let source = format!("${var}");
        let text = std::env::var(var).map_err(|e| YamlError::whole_file(&source, e.to_string()))?;
        Self::parse(Path::new(&source), &text, Path::new("/"))
    }

    /// Validates config `text` from `source`, resolving relative paths against `base`.
    pub fn parse(source: &Path, text: &str, base: &Path) -> Result<Self, YamlError> {
        let file = source.display().to_string();
        let raw: ConfigFile = ward_yaml::from_str(&file, text)?;
        let at = |loc: &Location, msg: String| YamlError::at(&file, loc.line(), loc.column(), msg);
        let resolve = |p: &str| base.join(p);

        let trust_domain = TrustDomain::new(&raw.trust_domain.value)
            .map_err(|e| at(&raw.trust_domain.referenced, format!("trust_domain: {e}")))?;

        let identity = crate::identity_config::parse(&raw.identity, &trust_domain, &file, base)?;

        let mut names: HashMap<String, u64> = HashMap::new();
        let mut check_name = |n: &Spanned<String>| -> Result<String, YamlError> {
            let v = &n.value;
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(at(
                    &n.referenced,
                    format!("listener name {v:?} must be 1-64 characters of a-z A-Z 0-9 . _ -"),
                ));
            }
            if let Some(line) = names.insert(v.clone(), n.referenced.line()) {
                return Err(at(
                    &n.referenced,
                    format!("listener name {v:?} is already used on line {line}"),
                ));
            }
            Ok(v.clone())
        };
        let socket = |s: &Spanned<String>, what: &str| -> Result<SocketAddr, YamlError> {
            s.value.parse().map_err(|_| {
                at(
                    &s.referenced,
                    format!("{what}: {:?} is not an IP:port address", s.value),
                )
            })
        };
        let host_port = |s: &Spanned<String>, what: &str| -> Result<String, YamlError> {
            match s.value.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) =>
                {
                    Ok(s.value.clone())
                }
                _ => Err(at(
                    &s.referenced,
                    format!("{what}: {:?} must be host:port", s.value),
                )),
            }
        };

        let mut inbound = Vec::new();
        for l in &raw.inbound {
            let name = check_name(&l.name)?;
            if let (Some(u), Protocol::Tcp) = (&l.headers_with_underscores, l.protocol) {
                return Err(at(
                    &u.referenced,
                    format!("inbound {name:?}: headers_with_underscores applies to protocol: http listeners only"),
                ));
            }
            if let (Some(p), Protocol::Http) = (&l.proxy_protocol, l.protocol) {
                return Err(at(
                    &p.referenced,
                    format!("inbound {name:?}: proxy_protocol applies to protocol: tcp listeners only (HTTP listeners send x-forwarded-for)"),
                ));
            }
            if let (Some(x), Protocol::Tcp) = (&l.x_forwarded_for, l.protocol) {
                return Err(at(
                    &x.referenced,
                    format!("inbound {name:?}: x_forwarded_for applies to protocol: http listeners only (TCP listeners can send a PROXY protocol header)"),
                ));
            }
            inbound.push(InboundConfig {
                key_exchange: crate::key_exchange::parse(&l.key_exchange, &name, &file)?,
                proxy_protocol: l.proxy_protocol.as_ref().map(|p| p.value),
                x_forwarded_for: l
                    .x_forwarded_for
                    .as_ref()
                    .map_or_else(ForwardedFor::default, |x| x.value),
                name,
                protocol: l.protocol,
                listen: socket(&l.listen, "listen")?,
                forward: match (&l.forward, l.transparent) {
                    (Some(f), false) => host_port(f, "forward")?,
                    (None, true) => String::new(),
                    _ => return Err(at(&l.name.referenced, format!("inbound {:?}: set forward (the app's address) or transparent: true (the port the caller dialled, on 127.0.0.1), not both", l.name.value))),
                },
                transparent: l.transparent,
                headers_with_underscores: l
                    .headers_with_underscores
                    .as_ref()
                    .map_or_else(UnderscoreHeaders::default, |u| u.value),
            });
        }
        let mut outbound = Vec::new();
        for l in &raw.outbound {
            let name = check_name(&l.name)?;
            let listen = socket(&l.listen, "listen")?;
            if !listen.ip().is_loopback() && !l.allow_non_loopback {
                return Err(at(
                    &l.listen.referenced,
                    format!("outbound {name:?} accepts plaintext, so it must listen on loopback; set allow_non_loopback: true to expose {listen} deliberately"),
                ));
            }
            let (upstream, server_id) = match (&l.upstream, &l.server_id, &l.transparent) {
                (Some(u), Some(id), None) => (u, id),
                (None, None, Some(t)) => {
                    if l.protocol == Protocol::Http {
                        return Err(at(&t.referenced, format!("outbound {name:?}: transparent listeners are protocol: tcp for now")));
                    }
                    let t = crate::transparent::parse(&t.value, &trust_domain, &file)?;
                    let default = t.default_id.clone();
                    outbound.push(OutboundConfig {
                        key_exchange: crate::key_exchange::parse(&l.key_exchange, &name, &file)?,
                        name,
                        protocol: l.protocol,
                        listen,
                        upstream: String::new(),
                        server_id: default,
                        transparent: Some(t),
                    });
                    continue;
                }
                _ => return Err(at(&l.name.referenced, format!("outbound {name:?}: set upstream and server_id, or transparent: {{...}} for redirected connections, not both"))),
            };
            let server_id = IdPattern::parse(&server_id.value).map_err(|e| {
                at(
                    &server_id.referenced,
                    format!("server_id {:?}: {e}", server_id.value),
                )
            })?;
            // A foreign server_id needs that domain's bundle, which only a CA that federates
            // with it hands out; with files, our own domain is the only one trusted.
            let files = matches!(identity, IdentityConfig::Files { .. });
            if files && !server_id.anchor().is_member_of(&trust_domain) {
                return Err(at(
                    &l.name.referenced,
                    format!("server_id {server_id} is outside trust domain {trust_domain}, the only one trusted with identity: files (federated domains come from the CA, identity: ca)"),
                ));
            }
            outbound.push(OutboundConfig {
                key_exchange: crate::key_exchange::parse(&l.key_exchange, &name, &file)?,
                name,
                protocol: l.protocol,
                listen,
                upstream: host_port(upstream, "upstream")?,
                server_id,
                transparent: None,
            });
        }

        let admin = match &raw.admin {
            Some(a) => socket(a, "admin")?,
            None => SocketAddr::from(([127, 0, 0, 1], 9901)),
        };
        let mut seen_addrs: HashMap<SocketAddr, &str> = HashMap::new();
        let listeners = inbound
            .iter()
            .map(|l| (l.listen, l.name.as_str()))
            .chain(outbound.iter().map(|l| (l.listen, l.name.as_str())))
            .chain(std::iter::once((admin, "admin")));
        for (addr, name) in listeners {
            if addr.port() != 0 {
                if let Some(other) = seen_addrs.insert(addr, name) {
                    return Err(YamlError::whole_file(
                        &file,
                        format!("{name} and {other} both listen on {addr}"),
                    ));
                }
            }
        }

        let limits = crate::limits::parse(&raw.limits, &file)?;
        let reload_interval = crate::limits::positive(
            &file,
            &raw.reload_interval,
            "reload_interval",
            Duration::from_secs(2),
        )?;

        let workload_api =
            crate::workload_config::parse(&raw.workload_api, &identity, &file, base)?;
        let workers = match &raw.workers {
            Some(w) if !(1..=MAX_WORKERS).contains(&w.value) => {
                return Err(at(
                    &w.referenced,
                    format!(
                    "workers: {} is not between 1 and {MAX_WORKERS} (leave it out for one per CPU)",
                    w.value
                ),
                ))
            }
            Some(w) => w.value,
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS)),
        };

        Ok(Self {
            source: source.to_path_buf(),
            trust_domain,
            identity,
            policy: resolve(&raw.policy),
            inbound,
            outbound,
            admin,
            limits,
            reload_interval,
            session_resumption: raw.session_resumption,
            workload_api,
            workers,
        })
    }

    /// The inbound listeners, which are what policy rules may name.
    pub fn policy_listeners(&self) -> Vec<ward_policy::Listener<'_>> {
        self.inbound
            .iter()
            .map(|l| ward_policy::Listener {
                name: &l.name,
                http: l.protocol == Protocol::Http,
            })
            .collect()
    }
}
