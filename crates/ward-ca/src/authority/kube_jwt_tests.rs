//! Claim checks of Kubernetes tokens at the edges of the integer range: an `exp` or `nbf`
//! near `i64::MAX` or `i64::MIN` is compared without overflow (it panicked in debug builds).

use crate::authority::kube_jwt::{check_claims, JwtError};

const ISS: &str = "https://kubernetes.default.svc";

fn claims(exp: i64, nbf: Option<i64>) -> Vec<u8> {
    let mut c = serde_json::json!({
        "iss": ISS,
        "aud": ["ward-ca"],
        "exp": exp,
        "kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "frontend"}},
    });
    if let Some(nbf) = nbf {
        c["nbf"] = nbf.into();
    }
    c.to_string().into_bytes()
}

#[test]
fn extreme_times_are_compared_without_overflow() {
    let now = 1_800_000_000;
    let ok = check_claims(&claims(i64::MAX, None), ISS, "ward-ca", now);
    assert_eq!(ok.unwrap().namespace, "web");
    assert!(matches!(
        check_claims(&claims(i64::MIN, None), ISS, "ward-ca", now),
        Err(JwtError::Expired)
    ));
    assert!(check_claims(&claims(i64::MAX, Some(i64::MAX)), ISS, "ward-ca", i64::MAX).is_ok());
    assert!(matches!(
        check_claims(&claims(i64::MAX, Some(i64::MAX)), ISS, "ward-ca", now),
        Err(JwtError::NotYetValid)
    ));
    // The corpus case the fuzz target starts from.
    let corpus = include_bytes!("../../../../fuzz/corpus/ca_request/claims-huge-exp.json");
    assert!(matches!(
        check_claims(corpus, ISS, "ward-ca", now),
        Err(JwtError::NotYetValid)
    ));
}
