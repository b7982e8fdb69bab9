//! The CA's request decoding and token verification on arbitrary bodies: JSON into the
//! enroll/renew/revoke requests, and the enroll token through the Kubernetes JWT verifier
//! (with a fixed JWKS) and the join-token shape check. Never panics; nothing verifies. The
//! body is also taken as the claims of a token whose signature verified (what the fuzzer
//! cannot forge), so claim checks such as `exp` arithmetic are fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward_ca::authority::kube_jwt::{check_claims, verify, Jwks};
use ward_ca::server::requests::{parse_json, EnrollRequest, RenewRequest, RevokeRequest};

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
"x":"Yuy_qstpcmIybqSgm1onrfsZ3Lj87LTfn69KSPs1kYo","y":"fa-zaT0Zs0pvlO-1yLr_cNy08OLoHcCjVgphONKMqV8"}]}"#;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<RenewRequest>(data);
    let _ = parse_json::<RevokeRequest>(data);
    let jwks = Jwks::parse(JWKS.as_bytes()).expect("fixed JWKS");
    let token = match parse_json::<EnrollRequest>(data) {
        Ok(req) => req.token,
        Err(_) => String::from_utf8_lossy(data).into_owned(),
    };
    let _ = ward_ca::authority::tokens::looks_like_join_token(&token);
    let _ = check_claims(data, "https://kubernetes.default.svc", "ward-ca", 1_800_000_000);
    assert!(verify(
        &token,
        &jwks,
        "https://kubernetes.default.svc",
        "ward-ca",
        1_800_000_000
    )
    .is_err());
});
