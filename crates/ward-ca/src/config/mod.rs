//! The `ward-ca serve` config file, parsed once into typed values (unknown keys refused,
//! every error located by file, line and column).

pub mod federation;
pub mod limits;
pub mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use ward_identity::{SpiffeId, TrustDomain};
use ward_yaml::{Location, Spanned, YamlError};

use crate::authority::issuer::{ABSOLUTE_MIN_TTL, MAX_TTL};
pub use crate::authority::jwt_svid::{JwtSvidConfig, OidcConfig};
pub use crate::config::limits::CaLimits;
use crate::config::limits::LimitsFile;
pub use crate::config::state::CaKeys;
use crate::config::state::{At, StateConfig, StateFile};

/// Certificate lifetimes the daemon grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Used when a request does not ask.
    pub default: Duration,
    /// Shortest a request may ask for.
    pub min: Duration,
    /// Longest a request may ask for.
    pub max: Duration,
}

/// Where to fetch a JWKS from and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksUrl {
    /// `https://host[:port]/path`.
    pub url: hyper::Uri,
    /// PEM roots that sign the server's certificate.
    pub ca_file: PathBuf,
    /// File holding a bearer token (re-read on every fetch; projected tokens rotate).
    pub token_file: Option<PathBuf>,
}

/// Kubernetes projected service-account token attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Required `aud` member.
    pub audience: String,
    /// Where the API server's signing keys come from.
    pub jwks: JwksSource,
    /// Template for the ID, with `{trust_domain}`, `{namespace}`, `{service_account}`.
    pub id_template: String,
}

/// Where a JWKS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A file, re-read when it changes.
    File(PathBuf),
    /// An HTTPS URL, fetched every few minutes and when a token names an unknown key.
    Url(JwksUrl),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Url(u) => write!(f, "{}", u.url),
        }
    }
}

impl CaConfig {
    /// The CA directory, when the keys are kept in one.
    pub fn ca_dir(&self) -> Option<&Path> {
        match &self.keys {
            CaKeys::Dir(dir) => Some(dir),
            CaKeys::Database { .. } => None,
        }
    }

    /// The algorithm new JWT-SVID keys are made for (ES256 unless `jwt_svid.algorithm` says).
    pub fn jwt_algorithm(&self) -> crate::authority::jwt_svid::JwtAlgorithm {
        self.jwt_svid
            .as_ref()
            .map(|j| j.algorithm)
            .unwrap_or_default()
    }
}

/// A validated daemon config.
#[derive(Clone, Debug)]
pub struct CaConfig {
    /// Trust domain served.
    pub trust_domain: TrustDomain,
    /// Where the CA's keys are.
    pub keys: CaKeys,
    /// HTTPS address.
    pub listen: SocketAddr,
    /// Plain-HTTP address of `/healthz`, `/readyz` and `/metrics` for probes and scrapers,
    /// if configured (they are on the HTTPS API too, behind a client certificate).
    pub ops: Option<SocketAddr>,
    /// Where tokens, certificate records and revocations are kept.
    pub state: StateConfig,
    /// DNS names in the CA's own serving certificate.
    pub dns_names: Vec<String>,
    /// Lifetimes.
    pub ttl: TtlPolicy,
    /// Join tokens accepted.
    pub join_token: bool,
    /// Kubernetes tokens accepted, if configured.
    pub kubernetes: Option<KubernetesConfig>,
    /// IDs allowed to call `/v1/revoke`.
    pub admins: Vec<SpiffeId>,
    /// Request limits.
    pub limits: CaLimits,
    /// How often workloads should fetch `/v1/bundle`: the bound on how long a revocation or
    /// a new root takes to reach them.
    pub bundle_refresh_hint: Duration,
    /// JWT-SVIDs (`POST /v1/jwt`), if enabled.
    pub jwt_svid: Option<JwtSvidConfig>,
    /// OIDC discovery for the JWT-SVID keys, if enabled.
    pub oidc: Option<OidcConfig>,
    /// Trust-domain federation: our bundle endpoint and the foreign domains we trust.
    pub federation: federation::FederationConfig,
}

type D = Spanned<ward_yaml::Duration>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    trust_domain: Spanned<String>,
    ca_dir: Option<Spanned<String>>,
    listen: Spanned<String>,
    ops: Option<Spanned<String>>,
    state: Spanned<StateFile>,
    #[serde(default)]
    dns_names: Vec<Spanned<String>>,
    ttl: Option<Spanned<TtlFile>>,
    #[serde(default)]
    attestors: AttestorsFile,
    #[serde(default)]
    admins: Vec<Spanned<String>>,
    #[serde(default)]
    limits: LimitsFile,
    bundle_refresh_hint: Option<D>,
    jwt_svid: Option<crate::authority::jwt_svid::JwtSvidFile>,
    oidc: Option<Spanned<crate::authority::jwt_svid::OidcFile>>,
    federation: Option<Spanned<federation::FederationFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TtlFile {
    default: Option<D>,
    min: Option<D>,
    max: Option<D>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestorsFile {
    join_token: Option<JoinFile>,
    kubernetes: Option<Spanned<KubeFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinFile {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeFile {
    issuer: String,
    audience: String,
    jwks_file: Option<String>,
    jwks_url: Option<Spanned<String>>,
    jwks_ca_file: Option<String>,
    jwks_token_file: Option<String>,
    id_template: Option<Spanned<String>>,
}

/// The path of the CA's own SPIFFE ID (`spiffe://<trust domain>/ward/ca`).
pub const CA_ID_PATH: &str = "/ward/ca";

/// The default Kubernetes ID template.
pub const DEFAULT_ID_TEMPLATE: &str = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}";

impl CaConfig {
    /// Whether `id` is reserved: the CA's own ID or an admin ID. No attestor issues one
    /// (admin certificates come from `ward-ca issue --config`, an operator's act), because
    /// whoever holds the CA's ID can pose as the CA to sidecars and collect their tokens.
    pub fn is_reserved(&self, id: &SpiffeId) -> bool {
        self.admins.contains(id)
            || SpiffeId::from_parts(&self.trust_domain, CA_ID_PATH).is_ok_and(|ca| &ca == id)
    }

    /// Reads and validates a config file; relative paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, YamlError> {
        let text = ward_yaml::read_file(path)?;
        Self::parse(
            &path.display().to_string(),
            &text,
            path.parent().unwrap_or(Path::new(".")),
        )
    }

    /// Validates config text named `file`.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Self, YamlError> {
        let raw: File = ward_yaml::from_str(file, text)?;
        let at = |l: &Location, m: String| YamlError::at(file, l.line(), l.column(), m);
        let trust_domain = TrustDomain::new(&raw.trust_domain.value)
            .map_err(|e| at(&raw.trust_domain.referenced, format!("trust_domain: {e}")))?;
        let listen = raw.listen.value.parse().map_err(|_| {
            at(
                &raw.listen.referenced,
                format!("listen: {:?} is not an IP:port address", raw.listen.value),
            )
        })?;
        let mut dns_names = Vec::new();
        for n in &raw.dns_names {
            if n.value.contains('*')
                || rustls_pki_types::DnsName::try_from(n.value.as_str()).is_err()
            {
                return Err(at(
                    &n.referenced,
                    format!("dns_names: {:?} is not a valid DNS name", n.value),
                ));
            }
            dns_names.push(n.value.clone());
        }

        let ttl = match &raw.ttl {
            None => TtlPolicy {
                default: Duration::from_secs(3600),
                min: Duration::from_secs(300),
                max: MAX_TTL,
            },
            Some(t) => {
                let get = |d: &Option<D>, fallback| d.as_ref().map_or(fallback, |d| d.value.get());
                let ttl = TtlPolicy {
                    default: get(&t.value.default, Duration::from_secs(3600)),
                    min: get(&t.value.min, Duration::from_secs(300)),
                    max: get(&t.value.max, MAX_TTL),
                };
                if ttl.min < ABSOLUTE_MIN_TTL
                    || ttl.max > MAX_TTL
                    || ttl.min > ttl.max
                    || !(ttl.min..=ttl.max).contains(&ttl.default)
                {
                    return Err(at(
                        &t.referenced,
                        "ttl: need 10s <= min <= default <= max <= 24h".into(),
                    ));
                }
                ttl
            }
        };

        let kubernetes = match &raw.attestors.kubernetes {
            None => None,
            Some(k) => {
                let jwks = match (&k.value.jwks_file, &k.value.jwks_url) {
                    (Some(file), None) => JwksSource::File(base.join(file)),
                    (None, Some(url)) => {
                        let parsed = ward_https::parse_https_url(&url.value)
                            .map_err(|e| at(&url.referenced, format!("jwks_url: {e}")))?;
                        let ca_file = k.value.jwks_ca_file.as_deref().ok_or_else(|| {
                            at(&url.referenced, "jwks_url needs jwks_ca_file (the PEM roots of the server, e.g. the service account's ca.crt)".into())
                        })?;
                        JwksSource::Url(JwksUrl {
                            url: parsed,
                            ca_file: base.join(ca_file),
                            token_file: k.value.jwks_token_file.as_deref().map(|t| base.join(t)),
                        })
                    }
                    _ => {
                        return Err(at(
                            &k.referenced,
                            "attestors.kubernetes: set exactly one of jwks_file or jwks_url".into(),
                        ))
                    }
                };
                let id_template = k
                    .value
                    .id_template
                    .as_ref()
                    .map_or(DEFAULT_ID_TEMPLATE.to_owned(), |t| t.value.clone());
                // Both claims must appear (else pods of different service accounts, or
                // namespaces, would share an ID), and the template must produce a valid ID
                // in this trust domain for a sample pod.
                let missing = ["{namespace}", "{service_account}"]
                    .into_iter()
                    .find(|p| !id_template.contains(p));
                let sample = match missing {
                    Some(p) => Err(format!("{id_template:?} must contain {p}")),
                    None => crate::authority::id_template::render_template(
                        &id_template,
                        &trust_domain,
                        "ns",
                        "sa",
                    )
                    .map_err(|e| e.to_string()),
                };
                if let Err(problem) = sample {
                    let loc = k
                        .value
                        .id_template
                        .as_ref()
                        .map_or(&k.referenced, |t| &t.referenced);
                    return Err(at(loc, format!("id_template: {problem}")));
                }
                Some(KubernetesConfig {
                    issuer: k.value.issuer.clone(),
                    audience: k.value.audience.clone(),
                    jwks,
                    id_template,
                })
            }
        };

        let mut admins = Vec::new();
        for a in &raw.admins {
            let id = SpiffeId::parse(&a.value)
                .map_err(|e| at(&a.referenced, format!("admins: {:?}: {e}", a.value)))?;
            if !id.is_member_of(&trust_domain) {
                return Err(at(
                    &a.referenced,
                    format!("admins: {id} is outside trust domain {trust_domain}"),
                ));
            }
            admins.push(id);
        }

        let limits = raw.limits.validate(file, &at)?;

        let state = raw
            .state
            .value
            .validate(base, |problem| at(&raw.state.referenced, problem))?;
        // Where the keys are follows from the state; a misplaced key is named at its line.
        let keys = raw.state.value.keys(base, raw.ca_dir.as_ref()).map_err(
            |(place, problem)| match place {
                At::Key(l) => at(l, problem),
                At::State => at(&raw.state.referenced, problem),
                At::File => YamlError::whole_file(file, problem),
            },
        )?;

        let bundle_refresh_hint = match &raw.bundle_refresh_hint {
            None => Duration::from_secs(30),
            Some(d) if (1..=3600).contains(&d.value.get().as_secs()) => d.value.get(),
            Some(d) => {
                return Err(at(
                    &d.referenced,
                    "bundle_refresh_hint must be between 1s and 1h".into(),
                ))
            }
        };

        let (jwt_svid, oidc) = crate::authority::jwt_svid::validate(
            raw.jwt_svid.as_ref(),
            raw.oidc.as_ref(),
            base,
            &at,
        )?;
        let federation = federation::validate(raw.federation.as_ref(), &trust_domain, base, &at)?;

        let ops = match &raw.ops {
            None => None,
            Some(o) => Some(o.value.parse().map_err(|_| {
                at(
                    &o.referenced,
                    format!("ops: {:?} is not an IP:port address", o.value),
                )
            })?),
        };

        Ok(Self {
            ops,
            federation,
            jwt_svid,
            oidc,
            trust_domain,
            keys,
            listen,
            state,
            dns_names,
            ttl,
            join_token: raw.attestors.join_token.as_ref().is_none_or(|j| j.enabled),
            kubernetes,
            admins,
            limits,
            bundle_refresh_hint,
        })
    }
}
