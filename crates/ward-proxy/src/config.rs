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

pub use crate::limits::Limits;

/// Where the workload's identity comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityConfig {
    /// PEM files, re-read when they change.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (must be mode 0600 or stricter).
        key: PathBuf,
        /// Trust bundle (roots) of the trust domain.
        bundle: PathBuf,
    },
    /// Enroll with and renew from a ward CA.
    Ca {
        /// `https://host:port` of each CA replica, tried in turn (a connect error, a TLS
        /// failure or a 5xx moves to the next).
        urls: Vec<hyper::Uri>,
        /// Bootstrap roots used to authenticate the CA until `/v1/bundle` takes over.
        bundle: PathBuf,
        /// Join token or projected service-account token.
        token_file: PathBuf,
        /// The CA's SPIFFE ID.
        server_id: IdPattern,
    },
}

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
    /// The app's address, `host:port`.
    pub forward: String,
    /// HTTP listeners: headers with `_` in their names.
    pub headers_with_underscores: UnderscoreHeaders,
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
    /// The upstream sidecar, `host:port`.
    pub upstream: String,
    /// Who the upstream must be.
    pub server_id: IdPattern,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    trust_domain: Spanned<String>,
    identity: Spanned<IdentityFile>,
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
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    files: Option<FilesFile>,
    ca: Option<Spanned<CaFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    url: OneOrMany,
    bundle: String,
    token_file: String,
    server_id: Option<String>,
}

/// A URL, or a list of them (`url: https://ca:8443` or `url: [https://ca-0:8443, ...]`).
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an https:// URL or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    all.push(url);
                }
                Ok(OneOrMany(all))
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesFile {
    cert: String,
    key: String,
    bundle: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundFile {
    name: Spanned<String>,
    #[serde(default)]
    protocol: Protocol,
    listen: Spanned<String>,
    forward: Spanned<String>,
    headers_with_underscores: Option<Spanned<UnderscoreHeaders>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundFile {
    name: Spanned<String>,
    #[serde(default)]
    protocol: Protocol,
    listen: Spanned<String>,
    upstream: Spanned<String>,
    server_id: Spanned<String>,
    #[serde(default)]
    allow_non_loopback: bool,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        let text = ward_yaml::read_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(path, &text, base)
    }

    /// Validates config `text` from `source`, resolving relative paths against `base`.
    pub fn parse(source: &Path, text: &str, base: &Path) -> Result<Self, YamlError> {
        let file = source.display().to_string();
        let raw: ConfigFile = ward_yaml::from_str(&file, text)?;
        let at = |loc: &Location, msg: String| YamlError::at(&file, loc.line(), loc.column(), msg);
        let resolve = |p: &str| base.join(p);

        let trust_domain = TrustDomain::new(&raw.trust_domain.value)
            .map_err(|e| at(&raw.trust_domain.referenced, format!("trust_domain: {e}")))?;

        let identity = match (&raw.identity.value.files, &raw.identity.value.ca) {
            (Some(f), None) => IdentityConfig::Files {
                cert: resolve(&f.cert),
                key: resolve(&f.key),
                bundle: resolve(&f.bundle),
            },
            (None, Some(c)) => {
                let mut urls = Vec::new();
                for text in &c.value.url.0 {
                    let url: hyper::Uri = text.parse().map_err(|_| {
                        at(&c.referenced, format!("identity.ca.url {text:?} is not a URL"))
                    })?;
                    if url.scheme_str() != Some("https") || url.host().is_none() {
                        return Err(at(&c.referenced, format!("identity.ca.url {text:?} must be https://host:port")));
                    }
                    urls.push(url);
                }
                if urls.is_empty() {
                    return Err(at(&c.referenced, "identity.ca.url: give at least one https:// URL".into()));
                }
                let default_id = format!("spiffe://{}/ward/ca", trust_domain);
                let id_text = c.value.server_id.clone().unwrap_or(default_id);
                let server_id = IdPattern::parse(&id_text)
                    .map_err(|e| at(&c.referenced, format!("identity.ca.server_id {id_text:?}: {e}")))?;
                IdentityConfig::Ca {
                    urls,
                    bundle: resolve(&c.value.bundle),
                    token_file: resolve(&c.value.token_file),
                    server_id,
                }
            }
            _ => {
                return Err(at(
                    &raw.identity.referenced,
                    "identity: set exactly one of `files: { cert, key, bundle }` or `ca: { url, bundle, token_file }`".into(),
                ))
            }
        };

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
            inbound.push(InboundConfig {
                name,
                protocol: l.protocol,
                listen: socket(&l.listen, "listen")?,
                forward: host_port(&l.forward, "forward")?,
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
            let server_id = IdPattern::parse(&l.server_id.value).map_err(|e| {
                at(
                    &l.server_id.referenced,
                    format!("server_id {:?}: {e}", l.server_id.value),
                )
            })?;
            if !server_id.anchor().is_member_of(&trust_domain) {
                return Err(at(
                    &l.server_id.referenced,
                    format!("server_id {server_id} is outside trust domain {trust_domain}, which is the only one this proxy trusts"),
                ));
            }
            outbound.push(OutboundConfig {
                name,
                protocol: l.protocol,
                listen,
                upstream: host_port(&l.upstream, "upstream")?,
                server_id,
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

        let workload_api = crate::workload::parse(&raw.workload_api, &identity, &file, base)?;

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
