//! Verification of Kubernetes projected service-account tokens (JWTs) against a JWKS.
//!
//! Only RS256 and ES256 are accepted; `none`, HMAC and everything else are refused before any
//! key is looked at. The signature is checked with ring over the exact `header.payload` bytes,
//! then `iss`, `aud`, `exp` and `nbf` (with a small clock skew), then the Kubernetes claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use thiserror::Error;
use ward_api::ErrorCode;

/// Largest token accepted (real ones are about 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp` and `nbf`.
pub const SKEW_SECS: i64 = 60;

/// Why a token was refused; `code()` is the stable API error code.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// An algorithm other than RS256/ES256 (including `none`).
    #[error("token algorithm {0:?} is not accepted (RS256 or ES256 only)")]
    Algorithm(String),
    /// No key in the JWKS can verify it.
    #[error("no key in the JWKS matches the token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("token issuer {0:?} is not the configured issuer")]
    Issuer(String),
    /// `aud` does not contain the configured audience.
    #[error("token audience does not include the configured audience")]
    Audience,
    /// `exp` has passed (or is missing).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The Kubernetes namespace / service-account claims are missing.
    #[error("token lacks the kubernetes.io namespace and service account claims")]
    Claims,
}

impl JwtError {
    /// Stable error code for the API.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::MalformedToken,
            Self::Algorithm(_) => ErrorCode::UnsupportedAlgorithm,
            Self::UnknownKey => ErrorCode::UnknownKey,
            Self::Signature => ErrorCode::BadSignature,
            Self::Issuer(_) => ErrorCode::WrongIssuer,
            Self::Audience => ErrorCode::WrongAudience,
            Self::Expired => ErrorCode::TokenExpired,
            Self::NotYetValid => ErrorCode::TokenNotYetValid,
            Self::Claims => ErrorCode::MissingClaims,
        }
    }
}

/// One usable verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Rsa {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        kid: Option<String>,
        point: Vec<u8>,
    },
}

/// A parsed JWKS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct JwksFile {
    keys: Vec<JwkFile>,
}

#[derive(Deserialize)]
struct JwkFile {
    kty: String,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Why a JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JwksParseError {
    /// Not the JSON of a key set (the parser's words).
    #[error("invalid JWKS: {0}")]
    NotJson(String),
    /// An RSA key without a usable modulus and exponent.
    #[error("invalid JWKS: RSA key without n/e")]
    RsaWithoutModulus,
    /// An EC key without a usable point.
    #[error("invalid JWKS: EC key without x/y")]
    EcWithoutPoint,
    /// P-256 coordinates of the wrong length.
    #[error("invalid JWKS: P-256 coordinates must be 32 bytes")]
    BadCoordinates,
    /// Nothing ward can verify with.
    #[error("JWKS has no RSA or P-256 keys")]
    NoUsableKeys,
}

impl Jwks {
    /// Parses a JWKS document, keeping RSA and P-256 keys and skipping others.
    pub fn parse(json: &[u8]) -> Result<Self, JwksParseError> {
        let file: JwksFile =
            serde_json::from_slice(json).map_err(|e| JwksParseError::NotJson(e.to_string()))?;
        let mut keys = Vec::new();
        for k in file.keys {
            match k.kty.as_str() {
                "RSA" => {
                    let (Some(n), Some(e)) =
                        (k.n.as_deref().and_then(b64), k.e.as_deref().and_then(b64))
                    else {
                        return Err(JwksParseError::RsaWithoutModulus);
                    };
                    keys.push(Key::Rsa { kid: k.kid, n, e });
                }
                "EC" if k.crv.as_deref() == Some("P-256") => {
                    let (Some(x), Some(y)) =
                        (k.x.as_deref().and_then(b64), k.y.as_deref().and_then(b64))
                    else {
                        return Err(JwksParseError::EcWithoutPoint);
                    };
                    if x.len() != 32 || y.len() != 32 {
                        return Err(JwksParseError::BadCoordinates);
                    }
                    let mut point = vec![4u8];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    keys.push(Key::Ec { kid: k.kid, point });
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            return Err(JwksParseError::NoUsableKeys);
        }
        Ok(Self { keys })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubeClaims>,
}

#[derive(Deserialize)]
struct KubeClaims {
    namespace: Option<String>,
    serviceaccount: Option<NamedRef>,
}

#[derive(Deserialize)]
struct NamedRef {
    name: Option<String>,
}

/// The identity a verified token vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeIdentity {
    /// Pod namespace.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
}

/// Verifies `token` and returns the Kubernetes identity it carries.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<KubeIdentity, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header: Header =
        serde_json::from_slice(&b64(h).ok_or(JwtError::Malformed("header is not base64url"))?)
            .map_err(|_| JwtError::Malformed("header is not JSON"))?;
    let sig = b64(s).ok_or(JwtError::Malformed("signature is not base64url"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let candidates = jwks.keys.iter().filter(|k| {
        let kid = match k {
            Key::Rsa { kid, .. } | Key::Ec { kid, .. } => kid,
        };
        header.kid.is_none() || kid.is_none() || kid == &header.kid
    });
    let verified = match header.alg.as_str() {
        "RS256" => candidates
            .filter_map(|k| match k {
                Key::Rsa { n, e, .. } => Some(RsaPublicKeyComponents { n, e }),
                Key::Ec { .. } => None,
            })
            .map(|key| {
                key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
                    .is_ok()
            })
            .collect::<Vec<_>>(),
        "ES256" => candidates
            .filter_map(|k| match k {
                Key::Ec { point, .. } => Some(UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    point,
                )),
                Key::Rsa { .. } => None,
            })
            .map(|key| key.verify(signed, &sig).is_ok())
            .collect::<Vec<_>>(),
        other => return Err(JwtError::Algorithm(other.to_owned())),
    };
    if verified.is_empty() {
        return Err(JwtError::UnknownKey);
    }
    if !verified.contains(&true) {
        return Err(JwtError::Signature);
    }
    let payload = b64(p).ok_or(JwtError::Malformed("payload is not base64url"))?;
    check_claims(&payload, issuer, audience, now)
}

/// Checks the claims of a token whose signature verified (the decoded payload JSON): issuer,
/// audience, validity with [`SKEW_SECS`] of skew, and the Kubernetes identity. Any `exp` or
/// `nbf`, however large or negative, is compared without overflow.
pub fn check_claims(
    payload: &[u8],
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<KubeIdentity, JwtError> {
    let claims: Claims =
        serde_json::from_slice(payload).map_err(|_| JwtError::Malformed("payload is not JSON"))?;
    if claims.iss.as_deref() != Some(issuer) {
        return Err(JwtError::Issuer(claims.iss.unwrap_or_default()));
    }
    let aud_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => a == audience,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    match claims.exp {
        Some(exp) if now <= exp.saturating_add(SKEW_SECS) => {}
        _ => return Err(JwtError::Expired),
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(SKEW_SECS) < nbf)
    {
        return Err(JwtError::NotYetValid);
    }
    let k = claims.kubernetes.ok_or(JwtError::Claims)?;
    match (k.namespace, k.serviceaccount.and_then(|s| s.name)) {
        (Some(namespace), Some(service_account))
            if !namespace.is_empty() && !service_account.is_empty() =>
        {
            Ok(KubeIdentity {
                namespace,
                service_account,
            })
        }
        _ => Err(JwtError::Claims),
    }
}
