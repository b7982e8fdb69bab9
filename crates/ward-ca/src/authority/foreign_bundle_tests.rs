//! Tests of reading foreign bundles: good, refused whole, partly ignored, emptied.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn root_of(td: &str) -> String {
    let generation = crate::authority::generation::generate(
        &td.parse().unwrap(),
        None,
        crate::authority::jwt_svid::JwtAlgorithm::default(),
    )
    .unwrap();
    STANDARD.encode(generation.pem.root().unwrap().as_ref())
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
        (1, Some(7), Some(60))
    );
    assert_eq!(b.ignored, ["key 1: use \"something-new\""]);
}

#[test]
fn garbage_and_half_understood_bundles_are_refused_whole() {
    let good_root = root_of("b.example");
    let x509 = |x5c: Value| json!({"use": "x509-svid", "kty": "EC", "x5c": x5c});
    let cases = [
        (json!("not an object").to_string(), "no `keys` array"),
        ("{".to_string(), "not a JSON document"),
        (
            json!({"keys": [{"use": "jwt-svid", "kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AA"}]}).to_string(),
            "no x509-svid root",
        ),
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
            json!({"keys": [x509(json!([good_root.clone()])), {"use": "jwt-svid", "kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA"}]}).to_string(),
            "P-384 key must be x and y of 48 bytes",
        ),
        (
            json!({"keys": [x509(json!([good_root])), {"use": "jwt-svid", "kty": "RSA", "kid": "k", "n": "!", "e": "AQAB"}]}).to_string(),
            "n is not base64url",
        ),
        ("x".repeat(MAX_DOCUMENT + 1), "more than"),
    ];
    for (doc, want) in cases {
        let err = parse(&td(), doc.as_bytes()).unwrap_err().to_string();
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
    let jwt_key = crate::authority::jwt_key::JwtKey::from_pem(
        &crate::authority::jwt_key::generate_pem(crate::authority::jwt_svid::JwtAlgorithm::Es256)
            .unwrap(),
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
    assert_eq!(b.sequence, None, "spiffe_sequence is optional");
}

/// SPIRE's `ec-p384` JWT keys (ES384) are kept; an Ed25519 key (a type ward does not verify)
/// and a key of a new `use` are left aside, and the rest of the bundle applies (section
/// 4.1.3), where the whole document used to be refused. Written by `jsonwebtoken`.
#[test]
fn keys_ward_does_not_verify_are_ignored_and_the_rest_applies() {
    use ward_e2e::foreign::ForeignJwtKey;
    let es384 = ForeignJwtKey::es384("spire-p384");
    let ed = ForeignJwtKey::ed25519("ed");
    let root = root_of("b.example");
    let text = json!({
        "keys": [
            {"use": "x509-svid", "kty": "EC", "x5c": [root]},
            es384.jwk(),
            ed.jwk(),
            {"use": "wit-svid", "kty": "EC", "crv": "P-256"},
        ],
    })
    .to_string();
    let b = parse(&td(), text.as_bytes()).unwrap();
    assert_eq!(b.roots.len(), 1);
    assert_eq!(b.jwt_keys.len(), 1, "{:?}", b.jwt_keys);
    assert_eq!(b.jwt_keys[0].kid.as_deref(), Some("spire-p384"));
    assert_eq!(b.jwt_keys[0].crv, "P-384");
    assert_eq!(
        b.ignored,
        ["key 2: jwt-svid OKP Ed25519", "key 3: use \"wit-svid\""]
    );
    assert!(!b.revokes_all());
    // What sidecars get holds the ES384 key only.
    let entry = b.entry().unwrap();
    assert_eq!(entry.jwt_keys.len(), 1);
}

/// `keys: []` is "every key revoked": a bundle with nothing, not a refusal; sidecars get no
/// entry for the domain.
#[test]
fn an_empty_key_set_revokes_everything() {
    let b = parse(&td(), br#"{"keys": [], "spiffe_sequence": 9}"#).unwrap();
    assert!(b.revokes_all());
    assert!(b.entry().is_none());
    assert_eq!(b.sequence, Some(9));
}

/// `spiffe_sequence` is compared only when both documents carry one.
#[test]
fn the_sequence_is_compared_only_when_both_have_one() {
    let at = |seq: Option<u64>| {
        let mut doc =
            json!({"keys": [{"use": "x509-svid", "kty": "EC", "x5c": [root_of("b.example")]}]});
        if let Some(s) = seq {
            doc["spiffe_sequence"] = json!(s);
        }
        parse(&td(), doc.to_string().as_bytes()).unwrap()
    };
    let (five, four, none) = (at(Some(5)), at(Some(4)), at(None));
    assert_eq!(
        four.follows(&five).unwrap_err(),
        BundleError::Backwards { new: 4, current: 5 }
    );
    assert!(five.follows(&four).is_ok());
    assert!(
        none.follows(&five).is_ok(),
        "a document without a sequence after one with"
    );
    assert!(
        four.follows(&none).is_ok(),
        "a sequence after a document without one"
    );
}
