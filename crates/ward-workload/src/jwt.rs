//! JWT-SVID validation (`ValidateJWTSVID`) and JWT bundles as JWKS documents
//! (`FetchJWTBundles`).
//!
//! A token is accepted only when: it is three base64url parts; its header names an allowed
//! algorithm (ES256, ES384, RS256, RS384, RS512, PS256, PS384 or PS512: the JWT-SVID
//! specification's list less ES512, which `ring` does not verify; never `none`, never HMAC)
//! and a `kid`; its `sub` is a valid
//! workload SPIFFE ID; the bundle of *that ID's own* trust domain holds a key with the `kid`
//! whose type fits the algorithm, and the signature verifies; `aud` (a string or an array)
//! contains the audience asked about; `exp` is present and in the future; `nbf`, when
//! present, is not in the future. The signature is checked before any claim is trusted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use ward_identity::SpiffeId;
use ward_tls::{JwtAuthority, JwtPublicKey, TrustBundles};

/// The longest token accepted (a JWT-SVID is a few hundred bytes).
pub const MAX_TOKEN: usize = 16 * 1024;

/// The algorithms a JWT-SVID may be signed with.
pub const ALLOWED_ALGS: [&str; 8] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Why a token is refused (`ValidateJWTSVID` answers `InvalidArgument` with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Over [`MAX_TOKEN`] bytes.
    #[error("the token is longer than {MAX_TOKEN} bytes")]
    TooLong,
    /// Not `header.claims.signature`.
    #[error("the token is not three dot-separated parts")]
    NotThreeParts,
    /// A part that is not base64url.
    #[error("the token's {0} is not base64url")]
    NotBase64(&'static str),
    /// A header or claims part that is not a JSON object.
    #[error("the token's {0} is not a JSON object")]
    NotObject(&'static str),
    /// An algorithm outside [`ALLOWED_ALGS`].
    #[error("algorithm {0:?} is not allowed (only {algs})", algs = ALLOWED_ALGS.join(", "))]
    Algorithm(String),
    /// A `typ` other than JWT or JOSE.
    #[error("token type {0} is not JWT")]
    Type(String),
    /// No `kid` in the header.
    #[error("the token's header has no kid")]
    NoKid,
    /// No `sub`.
    #[error("the token has no sub")]
    NoSub,
    /// A `sub` that is not a SPIFFE ID.
    #[error("sub {sub:?}: {source}")]
    Sub {
        /// The claim.
        sub: String,
        /// Which rule it breaks.
        source: ward_identity::IdError,
    },
    /// A `sub` that names a trust domain, not a workload.
    #[error("sub {0:?} names a trust domain, not a workload")]
    NotWorkload(String),
    /// No JWT keys for the subject's trust domain.
    #[error("no JWT bundle for trust domain {0}")]
    NoBundle(String),
    /// No key with the token's `kid` there.
    #[error("no key {kid:?} in the JWT bundle of {td}")]
    NoKey {
        /// The token's key id.
        kid: String,
        /// The subject's trust domain.
        td: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// The audience asked about is not in `aud`.
    #[error("audience {0:?} is not in the token's aud")]
    Audience(String),
    /// No numeric `exp`.
    #[error("the token has no numeric exp")]
    NoExp,
    /// Expired this many seconds ago.
    #[error("the token expired {0}s ago")]
    Expired(i64),
    /// `nbf` in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `nbf` that is not a number.
    #[error("the token's nbf is not a number")]
    BadNbf,
}

/// A token that passed every check.
#[derive(Debug)]
pub struct Validated {
    /// The token's subject.
    pub spiffe_id: SpiffeId,
    /// Every claim, as sent.
    pub claims: Map<String, Value>,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, InvalidToken> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::NotBase64(what))
}

fn json_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, InvalidToken> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(InvalidToken::NotObject(what)),
    }
}

/// Validates `token` for `audience` at `now` (Unix seconds) against `bundles`.
pub fn validate(
    bundles: &TrustBundles,
    token: &str,
    audience: &str,
    now: i64,
) -> Result<Validated, InvalidToken> {
    if token.len() > MAX_TOKEN {
        return Err(InvalidToken::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(InvalidToken::NotThreeParts);
    };
    let header = json_object(&decode_part(h, "header")?, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(InvalidToken::Algorithm(alg.to_owned()));
    }
    if let Some(typ) = header.get("typ") {
        if !matches!(typ.as_str(), Some("JWT" | "JOSE")) {
            return Err(InvalidToken::Type(typ.to_string()));
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(InvalidToken::NoKid)?;
    let claims = json_object(&decode_part(c, "claims")?, "claims")?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(InvalidToken::NoSub)?;
    let spiffe_id = SpiffeId::parse(sub).map_err(|source| InvalidToken::Sub {
        sub: sub.to_owned(),
        source,
    })?;
    if spiffe_id.path().is_empty() {
        return Err(InvalidToken::NotWorkload(sub.to_owned()));
    }
    let td = spiffe_id.trust_domain();
    let keys = bundles.jwt_authorities(td.as_str());
    if keys.is_empty() {
        return Err(InvalidToken::NoBundle(td.to_string()));
    }
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| InvalidToken::NoKey {
            kid: kid.to_owned(),
            td: td.to_string(),
        })?;
    let signature = decode_part(s, "signature")?;
    let signing_input = &token.as_bytes()[..h.len() + 1 + c.len()];
    if !key.verify(alg, signing_input, &signature) {
        return Err(InvalidToken::Signature);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(InvalidToken::Audience(audience.to_owned()));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(InvalidToken::NoExp)?;
    if exp <= now {
        return Err(InvalidToken::Expired(now - exp));
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(nbf) if nbf <= now => {}
            Some(_) => return Err(InvalidToken::NotYetValid),
            None => return Err(InvalidToken::BadNbf),
        }
    }
    Ok(Validated { spiffe_id, claims })
}

/// One key as a JWK (with `use: jwt-svid`, as in a SPIFFE bundle).
fn jwk(key: &JwtAuthority) -> Value {
    match &key.key {
        JwtPublicKey::P256 { point } | JwtPublicKey::P384 { point } => {
            let half = (point.len() - 1) / 2;
            json!({
                "kty": "EC",
                "crv": key.kind(),
                "x": URL_SAFE_NO_PAD.encode(&point[1..=half]),
                "y": URL_SAFE_NO_PAD.encode(&point[1 + half..]),
                "kid": key.kid,
                "use": "jwt-svid",
            })
        }
        JwtPublicKey::Rsa { n, e } => json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(n),
            "e": URL_SAFE_NO_PAD.encode(e),
            "kid": key.kid,
            "use": "jwt-svid",
        }),
    }
}

/// The JWKS document of one trust domain's JWT keys.
pub fn jwks(keys: &[JwtAuthority]) -> Vec<u8> {
    let doc = json!({ "keys": keys.iter().map(jwk).collect::<Vec<_>>() });
    doc.to_string().into_bytes()
}

/// A JSON value as a protobuf `Value` (for the claims of `ValidateJWTSVIDResponse`).
pub fn to_proto(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(list) => Kind::ListValue(prost_types::ListValue {
            values: list.iter().map(to_proto).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
    }
}
