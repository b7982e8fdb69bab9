//! JWT-SVIDs: their config, the checks on a request, and the token itself.
//!
//! A JWT-SVID (SPIFFE JWT-SVID specification) is a compact JWS signed ES256 (or RS256, by the
//! key's kind) with the signing generation's JWT key ([`crate::authority::jwt_key`]), header `{alg, kid, typ}`, claims `sub` (the
//! caller's verified SPIFFE ID, never taken from the request), `aud` (a string for one
//! audience, an array for several: relying parties such as AWS STS compare a string), `iat`,
//! `exp` and, with an OIDC issuer configured, `iss`. Config:
//!
//! ```yaml
//! jwt_svid: { default_ttl: 5m, max_ttl: 1h, algorithm: ES256 }  # enables POST /v1/jwt
//! oidc: { listen: "0.0.0.0:8444", issuer: https://oidc.example.com }   # + cert_file, key_file for HTTPS
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use ward_api::ErrorCode;
use ward_identity::SpiffeId;
use ward_yaml::{Location, Spanned, YamlError};

use crate::authority::error::CaError;
use crate::authority::jwt_key::JwtKey;

/// Most audiences one token may name.
pub const MAX_AUDIENCES: usize = 16;
/// Longest audience, bytes.
pub const MAX_AUDIENCE_LEN: usize = 256;
/// Shortest lifetime a JWT-SVID gets.
pub const MIN_TTL: Duration = Duration::from_secs(10);
/// Longest lifetime a JWT-SVID may be configured to get.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// The algorithm of new JWT-SVID keys (each key signs with the one it was made for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// ECDSA P-256 with SHA-256.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-3072.
    #[serde(rename = "RS256")]
    Rs256,
}

impl JwtAlgorithm {
    /// Its JWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `jwt_svid:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSvidConfig {
    /// Lifetime when the request names none.
    pub default_ttl: Duration,
    /// Longest lifetime granted.
    pub max_ttl: Duration,
    /// The algorithm of keys made from now on (`rotate prepare`, `init --config`).
    pub algorithm: JwtAlgorithm,
}

/// `oidc:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    /// Where the discovery document and keys are served (plain HTTP, for an ingress in
    /// front with a public certificate, or HTTPS with `tls`).
    pub listen: SocketAddr,
    /// The `issuer` of the discovery document and the `iss` of every JWT-SVID.
    pub issuer: String,
    /// `cert_file` and `key_file`: serve HTTPS with this certificate chain (one relying
    /// parties trust for the issuer's host) instead of plain HTTP.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

type D = Spanned<ward_yaml::Duration>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSvidFile {
    default_ttl: Option<D>,
    max_ttl: Option<D>,
    #[serde(default)]
    algorithm: JwtAlgorithm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OidcFile {
    listen: Spanned<String>,
    issuer: Spanned<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
}

/// Validates `jwt_svid:` and `oidc:`; `at` places a problem at its line.
pub(crate) fn validate(
    jwt: Option<&JwtSvidFile>,
    oidc: Option<&Spanned<OidcFile>>,
    base: &std::path::Path,
    at: &dyn Fn(&Location, String) -> YamlError,
) -> Result<(Option<JwtSvidConfig>, Option<OidcConfig>), YamlError> {
    let jwt = match jwt {
        None => None,
        Some(j) => {
            let get = |d: &Option<D>, default: Duration| -> Result<Duration, YamlError> {
                match d {
                    None => Ok(default),
                    Some(d) if (MIN_TTL..=MAX_TTL).contains(&d.value.get()) => Ok(d.value.get()),
                    Some(d) => Err(at(
                        &d.referenced,
                        "jwt_svid: lifetimes must be between 10s and 1h".into(),
                    )),
                }
            };
            let default_ttl = get(&j.default_ttl, Duration::from_secs(300))?;
            let max_ttl = get(&j.max_ttl, MAX_TTL)?;
            // One of the two was given, or the defaults (5m, 1h) would agree.
            let place = j.default_ttl.as_ref().or(j.max_ttl.as_ref());
            if let (true, Some(d)) = (default_ttl > max_ttl, place) {
                return Err(at(
                    &d.referenced,
                    "jwt_svid.default_ttl is longer than max_ttl".into(),
                ));
            }
            Some(JwtSvidConfig {
                default_ttl,
                max_ttl,
                algorithm: j.algorithm,
            })
        }
    };
    let oidc = match oidc {
        None => None,
        Some(o) => {
            if jwt.is_none() {
                return Err(at(
                    &o.referenced,
                    "oidc: serves the JWT-SVID keys; enable jwt_svid too".into(),
                ));
            }
            let listen = o.value.listen.value.parse().map_err(|_| {
                at(
                    &o.value.listen.referenced,
                    format!(
                        "oidc.listen: {:?} is not an address:port",
                        o.value.listen.value
                    ),
                )
            })?;
            let issuer = o.value.issuer.value.trim_end_matches('/').to_owned();
            let valid = issuer.starts_with("https://")
                && issuer.len() > "https://".len()
                && !issuer.contains(['?', '#', ' '])
                && issuer.is_ascii();
            if !valid {
                return Err(at(
                    &o.value.issuer.referenced,
                    "oidc.issuer: an https:// URL without query or fragment (what relying parties fetch /.well-known/openid-configuration under)".into(),
                ));
            }
            let tls = match (&o.value.cert_file, &o.value.key_file) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
                _ => {
                    return Err(at(
                        &o.referenced,
                        "oidc: give both cert_file and key_file (HTTPS), or neither (plain HTTP behind an ingress)".into(),
                    ))
                }
            };
            Some(OidcConfig {
                listen,
                issuer,
                tls,
            })
        }
    };
    Ok((jwt, oidc))
}

/// Why a JWT-SVID request is refused; [`JwtSvidError::code`] is its wire code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// Too few or too many audiences, or one that is empty, too long or has control
    /// characters.
    #[error("audience: {0}")]
    Audience(String),
    /// A lifetime outside what the CA grants.
    #[error("ttl: {asked}s is outside {min}s to {max}s")]
    Ttl {
        /// What was asked for, seconds.
        asked: u64,
        /// The shortest granted.
        min: u64,
        /// The longest granted (`jwt_svid.max_ttl`).
        max: u64,
    },
}

impl JwtSvidError {
    /// The API error code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Audience(_) => ErrorCode::InvalidAudience,
            Self::Ttl { .. } => ErrorCode::InvalidTtl,
        }
    }
}

/// Checks a request's audiences and lifetime against `cfg`; the lifetime to grant.
pub fn check_request(
    cfg: &JwtSvidConfig,
    audience: &[String],
    ttl: Option<u64>,
) -> Result<Duration, JwtSvidError> {
    if audience.is_empty() || audience.len() > MAX_AUDIENCES {
        return Err(JwtSvidError::Audience(format!(
            "give 1 to {MAX_AUDIENCES} audiences, not {}",
            audience.len()
        )));
    }
    for a in audience {
        if a.is_empty() || a.len() > MAX_AUDIENCE_LEN || a.chars().any(char::is_control) {
            return Err(JwtSvidError::Audience(format!(
                "each is 1 to {MAX_AUDIENCE_LEN} bytes without control characters"
            )));
        }
    }
    let ttl = ttl.map_or(cfg.default_ttl, Duration::from_secs);
    if ttl < MIN_TTL || ttl > cfg.max_ttl {
        return Err(JwtSvidError::Ttl {
            asked: ttl.as_secs(),
            min: MIN_TTL.as_secs(),
            max: cfg.max_ttl.as_secs(),
        });
    }
    Ok(ttl)
}

/// A signed JWT-SVID for `id` and its `exp`.
pub fn sign(
    key: &JwtKey,
    id: &SpiffeId,
    audience: &[String],
    ttl: Duration,
    issuer: Option<&str>,
    now: i64,
) -> Result<(String, i64), CaError> {
    let exp = now + ttl.as_secs() as i64;
    let header = json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "JWT"});
    let mut claims = json!({
        "sub": id.as_str(),
        "aud": match audience {
            [one] => json!(one),
            many => json!(many),
        },
        "iat": now,
        "exp": exp,
    });
    if let (Some(iss), Some(map)) = (issuer, claims.as_object_mut()) {
        map.insert("iss".into(), json!(iss));
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes())?;
    Ok((
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)),
        exp,
    ))
}
