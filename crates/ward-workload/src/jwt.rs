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

/// A token that passed every check.
#[derive(Debug)]
pub struct Validated {
    /// The token's subject.
    pub spiffe_id: SpiffeId,
    /// Every claim, as sent.
    pub claims: Map<String, Value>,
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the token's {what} is not base64url"))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("the token's {what} is not a JSON object")),
    }
}

/// Validates `token` for `audience` at `now` (Unix seconds) against `bundles`.
pub fn validate(
    bundles: &TrustBundles,
    token: &str,
    audience: &str,
    now: i64,
) -> Result<Validated, String> {
    if token.len() > MAX_TOKEN {
        return Err(format!("the token is longer than {MAX_TOKEN} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not three dot-separated parts".into());
    };
    let header = json_object(&decode_part(h, "header")?, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(format!(
            "algorithm {alg:?} is not allowed (only {})",
            ALLOWED_ALGS.join(", ")
        ));
    }
    if let Some(typ) = header.get("typ") {
        if !matches!(typ.as_str(), Some("JWT" | "JOSE")) {
            return Err(format!("token type {typ} is not JWT"));
        }
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("the token's header has no kid")?;
    let claims = json_object(&decode_part(c, "claims")?, "claims")?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or("the token has no sub")?;
    let spiffe_id = SpiffeId::parse(sub).map_err(|e| format!("sub {sub:?}: {e}"))?;
    if spiffe_id.path().is_empty() {
        return Err(format!("sub {sub:?} names a trust domain, not a workload"));
    }
    let td = spiffe_id.trust_domain();
    let keys = bundles.jwt_authorities(td.as_str());
    if keys.is_empty() {
        return Err(format!("no JWT bundle for trust domain {td}"));
    }
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("no key {kid:?} in the JWT bundle of {td}"))?;
    let signature = decode_part(s, "signature")?;
    let signing_input = &token.as_bytes()[..h.len() + 1 + c.len()];
    if !key.verify(alg, signing_input, &signature) {
        return Err("the signature does not verify".into());
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(format!("audience {audience:?} is not in the token's aud"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("the token has no numeric exp")?;
    if exp <= now {
        return Err(format!("the token expired {}s ago", now - exp));
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(nbf) if nbf <= now => {}
            Some(_) => return Err("the token is not valid yet (nbf)".into()),
            None => return Err("the token's nbf is not a number".into()),
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
