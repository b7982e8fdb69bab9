//! The wire format, pinned: the JSON the CA documents (docs/ca.md) decodes into these types
//! and they encode back to the same field names; every error code has the status the docs
//! give it and round-trips through its name.

use crate::*;

#[test]
fn documented_documents_decode() {
    let bundle: BundleDocument = serde_json::from_str(
        r#"{"trust_domain": "example.org", "bundle_pem": "-----BEGIN CERTIFICATE-----...",
            "spiffe_bundle": {"keys": [{"use": "x509-svid", "kty": "EC", "crv": "P-256", "x": "a", "y": "b", "x5c": ["c"]}],
                              "spiffe_sequence": 3, "spiffe_refresh_hint": 30},
            "issuers": [{"role": "signing", "spki_sha256": "7bbc", "serial": "f3f3"}],
            "revocations": [{"spiffe_id": null, "serial": "3f1c", "reason": "key leaked", "revoked_at": 1795450000}],
            "added_later": true}"#,
    )
    .unwrap();
    assert_eq!(bundle.spiffe_bundle.keys[0].key_use, "x509-svid");
    assert_eq!(bundle.issuers[0].role, IssuerRole::Signing);
    assert_eq!(bundle.revocations[0].serial.as_deref(), Some("3f1c"));
    let text = serde_json::to_string(&bundle).unwrap();
    assert!(text.contains(r#""use":"x509-svid""#), "{text}");
    assert!(text.contains(r#""spiffe_id":null"#), "{text}");

    let revoke: RevokeRequest = serde_json::from_str(r#"{"serial": "3f1c"}"#).unwrap();
    assert_eq!(revoke.serial.as_deref(), Some("3f1c"));
    assert!(serde_json::from_str::<RenewRequest>(r#"{"csr": "x", "token": "y"}"#).is_err());
    assert!(serde_json::from_str::<EnrollRequest>(r#"{"csr": "x"}"#).is_err());
}

#[test]
fn error_codes_have_their_documented_status_and_name() {
    for (code, status, name) in [
        (ErrorCode::MalformedJson, 400, "malformed_json"),
        (ErrorCode::TokenUsed, 401, "token_used"),
        (ErrorCode::UnknownCertificate, 401, "unknown_certificate"),
        (ErrorCode::ReservedId, 403, "reserved_id"),
        (ErrorCode::MethodNotAllowed, 405, "method_not_allowed"),
        (ErrorCode::RequestTimeout, 408, "request_timeout"),
        (ErrorCode::BodyTooLarge, 413, "body_too_large"),
        (ErrorCode::RateLimited, 429, "rate_limited"),
        (ErrorCode::StateUnavailable, 503, "state_unavailable"),
    ] {
        assert_eq!(code.status(), status, "{code}");
        assert_eq!(code.as_str(), name);
        let body = ErrorBody {
            error: code,
            message: "m".into(),
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text, format!(r#"{{"error":"{name}","message":"m"}}"#));
        assert_eq!(serde_json::from_str::<ErrorBody>(&text).unwrap(), body);
    }
    assert!(ErrorCode::StateUnavailable.is_transient());
    assert!(!ErrorCode::TokenUsed.is_transient());
}
