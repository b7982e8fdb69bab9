//! Refusals of `jwt::validate`: each forged or unfit token is refused for its own reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use ward_identity::TrustDomain;
use ward_tls::{JwtAuthority, TrustBundles};

use crate::jwt::validate;

struct Signer(EcdsaKeyPair);

impl Signer {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap(),
        )
    }
    fn authority(&self, kid: &str) -> JwtAuthority {
        let p = self.0.public_key().as_ref();
        JwtAuthority::p256(kid.into(), &p[1..33], &p[33..]).unwrap()
    }
    fn token(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

const NOW: i64 = 1_800_000_000;

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": ["sts.example", "other"], "exp": NOW + 300, "iat": NOW})
}

fn header() -> Value {
    json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
}

fn bundles(signer: &Signer) -> TrustBundles {
    let mut b = TrustBundles::default();
    b.set_jwt_authorities(
        TrustDomain::new("a.test").unwrap(),
        vec![signer.authority("k1")],
    );
    b
}

#[test]
fn a_good_token_passes_with_its_claims() {
    let s = Signer::new();
    let t = s.token(header(), claims("spiffe://a.test/app"));
    let ok = validate(&bundles(&s), &t, "sts.example", NOW).unwrap();
    assert_eq!(ok.spiffe_id.as_str(), "spiffe://a.test/app");
    assert_eq!(ok.claims["iat"], NOW);
}

#[test]
fn forged_and_unfit_tokens_are_refused() {
    let s = Signer::new();
    let b = bundles(&s);
    let other = Signer::new();
    let sub = "spiffe://a.test/app";
    let refuse = |t: String, aud: &str, why: &str| {
        let e = validate(&b, &t, aud, NOW).unwrap_err().to_string();
        assert!(e.contains(why), "{e:?} does not say {why:?}");
    };
    // Wrong audience, expired, not yet valid.
    refuse(s.token(header(), claims(sub)), "nope", "audience");
    let mut c = claims(sub);
    c["exp"] = json!(NOW);
    refuse(s.token(header(), c), "sts.example", "expired");
    let mut c = claims(sub);
    c["nbf"] = json!(NOW + 10);
    refuse(s.token(header(), c), "sts.example", "not valid yet");
    let mut c = claims(sub);
    c.as_object_mut().unwrap().remove("exp");
    refuse(s.token(header(), c), "sts.example", "exp");
    // Signed by a key the bundle does not hold under that kid.
    refuse(
        other.token(header(), claims(sub)),
        "sts.example",
        "signature",
    );
    // alg none / HMAC / a mismatched algorithm.
    for alg in ["none", "HS256", "RS256", "ES384", "ES512", "EdDSA"] {
        let mut h = header();
        h["alg"] = json!(alg);
        let expect = if alg == "RS256" || alg == "ES384" {
            "signature"
        } else {
            "not allowed"
        };
        refuse(s.token(h, claims(sub)), "sts.example", expect);
    }
    let unsigned = {
        let t = s.token(json!({"alg": "none", "kid": "k1"}), claims(sub));
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    refuse(unsigned, "sts.example", "not allowed");
    // A token of another trust domain, signed with this domain's key: its own domain's
    // bundle decides, and there is none.
    refuse(
        s.token(header(), claims("spiffe://b.test/app")),
        "sts.example",
        "no JWT bundle for trust domain b.test",
    );
    // Unknown kid, no kid, bad subject, junk.
    let mut h = header();
    h["kid"] = json!("k2");
    refuse(s.token(h, claims(sub)), "sts.example", "no key");
    let mut h = header();
    h.as_object_mut().unwrap().remove("kid");
    refuse(s.token(h, claims(sub)), "sts.example", "no kid");
    refuse(
        s.token(header(), claims("spiffe://a.test")),
        "sts.example",
        "not a workload",
    );
    refuse(
        s.token(header(), claims("spiffe://A.test/x")),
        "sts.example",
        "sub",
    );
    refuse("a.b".into(), "sts.example", "three");
    refuse("!!.!!.!!".into(), "sts.example", "base64url");
    refuse("x".repeat(20_000), "sts.example", "longer");
}

#[test]
fn rs256_tokens_verify_with_an_rsa_key_and_not_under_another_algorithm() {
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::Generate;
    let private = rsa::PrivateKey::try_generate().unwrap();
    let der = private.to_pkcs8_der().unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).unwrap();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
    let mut b = TrustBundles::default();
    let authority = JwtAuthority::rsa("r1".into(), &public.n, &public.e).unwrap();
    b.set_jwt_authorities(TrustDomain::new("a.test").unwrap(), vec![authority]);
    let sign_with = |alg: &str, padding: &'static dyn ring::signature::RsaEncoding| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "r1"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims("spiffe://a.test/app").to_string())
        );
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let sign = |alg: &str| sign_with(alg, &ring::signature::RSA_PKCS1_SHA256);
    let ok = validate(&b, &sign("RS256"), "sts.example", NOW).unwrap();
    assert_eq!(ok.spiffe_id.as_str(), "spiffe://a.test/app");
    // The same signature presented as ES256 does not fit an RSA key, nor as RS384.
    let err = validate(&b, &sign("ES256"), "sts.example", NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signature"), "{err}");
    let err = validate(&b, &sign("RS384"), "sts.example", NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signature"), "{err}");
    // The JWT-SVID specification's other RSA algorithms verify under their own names.
    for (alg, padding) in [
        (
            "RS384",
            &ring::signature::RSA_PKCS1_SHA384 as &'static dyn ring::signature::RsaEncoding,
        ),
        ("RS512", &ring::signature::RSA_PKCS1_SHA512),
        ("PS256", &ring::signature::RSA_PSS_SHA256),
        ("PS512", &ring::signature::RSA_PSS_SHA512),
    ] {
        let ok = validate(&b, &sign_with(alg, padding), "sts.example", NOW);
        assert!(ok.is_ok(), "{alg}: {ok:?}");
    }
}

/// ES384 (SPIRE's `ec-p384` JWT keys) verifies with a P-384 key; ES512 is not accepted.
#[test]
fn es384_tokens_verify_with_a_p384_key() {
    use ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING as P384;
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&P384, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&P384, doc.as_ref(), &rng).unwrap();
    let p = key.public_key().as_ref();
    let authority = JwtAuthority::p384("p384".into(), &p[1..49], &p[49..]).unwrap();
    let mut b = TrustBundles::default();
    b.set_jwt_authorities(TrustDomain::new("a.test").unwrap(), vec![authority]);
    let sign = |alg: &str| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "p384"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims("spiffe://a.test/app").to_string())
        );
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    let ok = validate(&b, &sign("ES384"), "sts.example", NOW).unwrap();
    assert_eq!(ok.spiffe_id.as_str(), "spiffe://a.test/app");
    let err = validate(&b, &sign("ES256"), "sts.example", NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signature"), "{err}");
    let err = validate(&b, &sign("ES512"), "sts.example", NOW)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not allowed"), "{err}");
    // The JWKS a workload gets (FetchJWTBundles) names the curve and 48-byte coordinates.
    let jwks: Value =
        serde_json::from_slice(&crate::jwt::jwks(b.jwt_authorities("a.test"))).unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "P-384");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap(),
        &p[1..49]
    );
}
