//! A foreign trust domain's SPIFFE bundle, read and judged whole before it is trusted.
//!
//! The document is the JWKS of the SPIFFE Trust Domain and Bundle specification. Accepted
//! only when: it is at most [`MAX_DOCUMENT`] bytes of JSON with a `keys` array; every
//! `x509-svid` key carries exactly one certificate that is a usable trust anchor, and none
//! names another trust domain in a SPIFFE URI SAN (ward's roots name their own); every
//! `jwt-svid` key has a `kid` and is a P-256 or 2048-bit-or-larger RSA key; there is at least
//! one root. Keys of any other `use` are ignored, as the specification asks. Anything else
//! refuses the whole document: a half-understood bundle is never trusted in part.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use ward_identity::TrustDomain;
use ward_tls::{JwtAuthority, TrustBundles};

/// The largest bundle document accepted.
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// A foreign bundle that passed every check.
#[derive(Clone, Debug)]
pub struct ForeignBundle {
    /// Its trust domain.
    pub trust_domain: TrustDomain,
    /// Its X.509 roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// Its JWT-SVID keys, as they came.
    pub jwt_keys: Vec<ward_api::Jwk>,
    /// `spiffe_sequence` (0 when absent).
    pub sequence: u64,
    /// `spiffe_refresh_hint`, seconds, if given.
    pub refresh_hint: Option<u64>,
    /// The document itself.
    pub document: String,
}

fn text<'a>(key: &'a Value, field: &str) -> &'a str {
    key.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The SPIFFE trust domain a root names in a URI SAN, if any.
fn named_domain(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u
            .strip_prefix("spiffe://")
            .map(|rest| rest.split('/').next().unwrap_or("").to_owned()),
        _ => None,
    })
}

/// Reads and judges `document` as the bundle of `td`.
pub fn parse(td: &TrustDomain, document: &[u8]) -> Result<ForeignBundle, String> {
    if document.len() > MAX_DOCUMENT {
        return Err(format!(
            "the document is {} bytes, more than {MAX_DOCUMENT}",
            document.len()
        ));
    }
    let doc: Value =
        serde_json::from_slice(document).map_err(|e| format!("not a JSON document: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no `keys` array: not a SPIFFE bundle")?;
    let mut roots = Vec::new();
    let mut jwt_keys = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let bad = |m: String| format!("key {i}: {m}");
        match text(key, "use") {
            "x509-svid" => {
                let x5c = key
                    .get("x5c")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 1)
                    .ok_or_else(|| {
                        bad("an x509-svid key needs exactly one x5c certificate".into())
                    })?;
                let der = x5c[0]
                    .as_str()
                    .and_then(|b| STANDARD.decode(b).ok())
                    .ok_or_else(|| bad("x5c is not base64".into()))?;
                if let Some(named) = named_domain(&der).filter(|n| n != td.as_str()) {
                    return Err(bad(format!(
                        "the root names trust domain {named}, not {td}: a bundle for another trust domain"
                    )));
                }
                roots.push(CertificateDer::from(der));
            }
            "jwt-svid" => {
                let kid = text(key, "kid").to_owned();
                let part = |f: &str| {
                    URL_SAFE_NO_PAD
                        .decode(text(key, f))
                        .map_err(|_| bad(format!("{f} is not base64url")))
                };
                let authority = match (text(key, "kty"), text(key, "crv")) {
                    ("EC", "P-256") => JwtAuthority::p256(kid, &part("x")?, &part("y")?),
                    ("RSA", _) => JwtAuthority::rsa(kid, &part("n")?, &part("e")?),
                    (kty, crv) => {
                        return Err(bad(format!("JWT key type {kty} {crv} is not supported")))
                    }
                };
                authority.map_err(|e| bad(e.to_string()))?;
                let jwk: ward_api::Jwk = serde_json::from_value(key.clone())
                    .map_err(|e| bad(format!("not a JWK: {e}")))?;
                jwt_keys.push(jwk);
            }
            _ => {}
        }
    }
    if roots.is_empty() {
        return Err("no x509-svid root: a bundle that anchors nothing is never accepted".into());
    }
    // Every root must be a usable anchor; this is the check the sidecars will make.
    TrustBundles::single(td.clone(), roots.clone()).map_err(|e| e.to_string())?;
    Ok(ForeignBundle {
        trust_domain: td.clone(),
        roots,
        jwt_keys,
        sequence: doc
            .get("spiffe_sequence")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        refresh_hint: doc.get("spiffe_refresh_hint").and_then(Value::as_u64),
        document: String::from_utf8_lossy(document).into_owned(),
    })
}

impl ForeignBundle {
    /// As handed to sidecars inside `/v1/bundle`.
    pub fn entry(&self) -> ward_api::FederatedBundle {
        ward_api::FederatedBundle {
            trust_domain: self.trust_domain.to_string(),
            bundle_pem: ward_tls::pem::certs_to_pem(&self.roots),
            jwt_keys: self.jwt_keys.clone(),
            spiffe_sequence: self.sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root_of(td: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        crate::ca_dir::init(&dir.path().join("ca"), &td.parse().unwrap(), false).unwrap();
        let der = ward_tls::pem::load_certs(&dir.path().join("ca").join("root.pem")).unwrap();
        STANDARD.encode(der[0].as_ref())
    }

    fn td() -> TrustDomain {
        "b.example".parse().unwrap()
    }

    #[test]
    fn a_good_bundle_is_read_and_unknown_uses_are_ignored() {
        let doc = json!({
            "keys": [
                {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x": "", "y": "", "x5c": [root_of("b.example")]},
                {"use": "something-new", "kty": "OKP"},
            ],
            "spiffe_sequence": 7,
            "spiffe_refresh_hint": 60,
        });
        let b = parse(&td(), doc.to_string().as_bytes()).unwrap();
        assert_eq!(
            (b.roots.len(), b.sequence, b.refresh_hint),
            (1, 7, Some(60))
        );
    }

    #[test]
    fn garbage_and_half_understood_bundles_are_refused_whole() {
        let good_root = root_of("b.example");
        let x509 = |x5c: Value| json!({"use": "x509-svid", "kty": "EC", "x5c": x5c});
        let cases = [
            (json!("not an object").to_string(), "no `keys` array"),
            ("{".to_string(), "not a JSON document"),
            (json!({"keys": []}).to_string(), "no x509-svid root"),
            (json!({"keys": [x509(json!([]))]}).to_string(), "exactly one x5c"),
            (json!({"keys": [x509(json!(["!!"]))]}).to_string(), "not base64"),
            (json!({"keys": [x509(json!([STANDARD.encode(b"junk")]))]}).to_string(), "usable"),
            (
                json!({"keys": [x509(json!([root_of("a.example")]))]}).to_string(),
                "names trust domain a.example",
            ),
            (
                json!({"keys": [x509(json!([good_root])), {"use": "jwt-svid", "kty": "EC", "crv": "P-256", "kid": "k", "x": "AA", "y": "AA"}]}).to_string(),
                "x and y",
            ),
            (
                json!({"keys": [x509(json!([good_root])), {"use": "jwt-svid", "kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}).to_string(),
                "not supported",
            ),
            ("x".repeat(MAX_DOCUMENT + 1), "more than"),
        ];
        for (doc, want) in cases {
            let err = parse(&td(), doc.as_bytes()).unwrap_err();
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
    }

    /// A JWKS produced by a JWT library nobody here wrote (`jsonwebtoken`'s `JwkSet`), with a
    /// root in `x5c` and a JWT key, reads as a SPIFFE bundle. (The `spiffe` crate, which reads
    /// our documents in tests/federation.rs, has no bundle serializer to produce one.)
    #[test]
    fn a_jwks_written_by_another_library_is_read() {
        use jsonwebtoken::jwk::{
            AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
            EllipticCurveKeyType, Jwk, JwkSet, PublicKeyUse,
        };
        let root = root_of("b.example");
        let der = STANDARD.decode(&root).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let point = cert.public_key().subject_public_key.data.to_vec();
        let ec = |x: &[u8], y: &[u8]| {
            AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            })
        };
        let jwt_key = crate::jwt_key::JwtKey::from_pem(
            &crate::jwt_key::generate_pem(crate::jwt_svid::JwtAlgorithm::Es256).unwrap(),
            std::path::Path::new("jwt.key"),
        )
        .unwrap();
        let jwk = jwt_key.jwk();
        let set = JwkSet {
            keys: vec![
                Jwk {
                    common: CommonParameters {
                        public_key_use: Some(PublicKeyUse::Other("x509-svid".into())),
                        x509_chain: Some(vec![root.clone()]),
                        ..CommonParameters::default()
                    },
                    algorithm: ec(&point[1..33], &point[33..]),
                },
                Jwk {
                    common: CommonParameters {
                        public_key_use: Some(PublicKeyUse::Other("jwt-svid".into())),
                        key_id: jwk.kid.clone(),
                        ..CommonParameters::default()
                    },
                    algorithm: ec(
                        &URL_SAFE_NO_PAD.decode(&jwk.x).unwrap(),
                        &URL_SAFE_NO_PAD.decode(&jwk.y).unwrap(),
                    ),
                },
            ],
        };
        let text = serde_json::to_string(&set).unwrap();
        let b = parse(&td(), text.as_bytes()).unwrap();
        assert_eq!(b.roots.len(), 1);
        assert_eq!(b.roots[0].as_ref(), der.as_slice());
        assert_eq!(b.jwt_keys.len(), 1);
        assert_eq!(b.jwt_keys[0].kid, jwk.kid);
        assert_eq!(b.sequence, 0, "spiffe_sequence is optional");
    }
}
