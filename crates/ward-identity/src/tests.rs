//! Table-driven tests of SPIFFE ID parsing, patterns and the SVID profile check.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::*;

#[test]
fn accepts_valid_ids() {
    for (input, td, path) in [
        ("spiffe://example.org", "example.org", ""),
        (
            "spiffe://example.org/ns/web/sa/frontend",
            "example.org",
            "/ns/web/sa/frontend",
        ),
        ("spiffe://a", "a", ""),
        (
            "spiffe://td-1_x.y/A.b-C_d/..x/x..",
            "td-1_x.y",
            "/A.b-C_d/..x/x..",
        ),
        ("spiffe://example.org/...", "example.org", "/..."),
    ] {
        let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(id.as_str(), input);
        assert_eq!(id.trust_domain_name(), td);
        assert_eq!(id.path(), path);
        assert_eq!(id.is_workload(), !path.is_empty());
    }
}

#[test]
fn refuses_invalid_ids_with_the_rule_broken() {
    let long_td = format!("spiffe://{}", "a".repeat(256));
    let long_id = format!("spiffe://td/{}", "a".repeat(2048));
    for (input, want) in [
        ("", IdError::Empty),
        ("SPIFFE://example.org/a", IdError::Scheme),
        ("Spiffe://example.org/a", IdError::Scheme),
        ("spiffe:/example.org/a", IdError::Scheme),
        ("https://example.org/a", IdError::Scheme),
        ("example.org/a", IdError::Scheme),
        ("spiffe://", IdError::EmptyTrustDomain),
        ("spiffe:///a", IdError::EmptyTrustDomain),
        (long_td.as_str(), IdError::TrustDomainTooLong { len: 256 }),
        (long_id.as_str(), IdError::TooLong { len: 2060 }),
        ("spiffe://Example.org/a", IdError::TrustDomainUpperCase),
        ("spiffe://example.org:8443/a", IdError::TrustDomainPort),
        ("spiffe://user@example.org/a", IdError::TrustDomainUserinfo),
        ("spiffe://user:pw@example.org/a", IdError::TrustDomainPort),
        ("spiffe://example.org/a?x=1", IdError::Query),
        ("spiffe://example.org/a#frag", IdError::Fragment),
        ("spiffe://example.org?x", IdError::Query),
        ("spiffe://example%2eorg/a", IdError::PercentEncoded),
        ("spiffe://example.org/a%20b", IdError::PercentEncoded),
        ("spiffe://example.org/", IdError::TrailingSlash),
        ("spiffe://example.org/a/", IdError::TrailingSlash),
        ("spiffe://example.org//a", IdError::EmptySegment),
        ("spiffe://example.org/a//b", IdError::EmptySegment),
        ("spiffe://example.org/./a", IdError::DotSegment),
        ("spiffe://example.org/a/..", IdError::DotSegment),
        ("spiffe://example.org/a/../b", IdError::DotSegment),
        ("spiffe://example.org/a b", IdError::PathChar { byte: b' ' }),
        ("spiffe://example.org/a*", IdError::PathChar { byte: b'*' }),
        (
            "spiffe://exa mple.org/a",
            IdError::TrustDomainChar { byte: b' ' },
        ),
    ] {
        assert_eq!(SpiffeId::parse(input), Err(want), "{input:?}");
    }
}

#[test]
fn boundaries_of_length_limits() {
    let td255 = "a".repeat(255);
    assert!(SpiffeId::parse(&format!("spiffe://{td255}/x")).is_ok());
    let path_len = MAX_SPIFFE_ID_LEN - "spiffe://td/".len();
    let exact = format!("spiffe://td/{}", "b".repeat(path_len));
    assert_eq!(exact.len(), 2048);
    assert!(SpiffeId::parse(&exact).is_ok());
    assert_eq!(
        SpiffeId::parse(&format!("{exact}c")),
        Err(IdError::TooLong { len: 2049 })
    );
}

/// Every byte value, placed inside a trust domain and inside a path segment.
#[test]
fn every_byte_value_in_trust_domain_and_path() {
    for b in 0u8..=255 {
        let td_ok = b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b);
        let mut td = b"spiffe://ab".to_vec();
        td.insert(10, b);
        td.extend_from_slice(b"/w");
        let got = SpiffeId::parse_bytes(&td);
        // '/' simply ends the trust domain early ("a" then path "/b/w"), which is valid.
        let expect_ok = td_ok || b == b'/';
        assert_eq!(
            got.is_ok(),
            expect_ok,
            "trust domain byte 0x{b:02x}: {got:?}"
        );

        let path_ok = b.is_ascii_alphanumeric() || b"-._".contains(&b);
        let mut path = b"spiffe://td/ab".to_vec();
        path.insert(13, b);
        let got = SpiffeId::parse_bytes(&path);
        // '/' splits the segment in two ("a" and "b"), which is valid.
        let expect_ok = path_ok || b == b'/';
        assert_eq!(got.is_ok(), expect_ok, "path byte 0x{b:02x}: {got:?}");
    }
}

#[test]
fn trust_domain_type() {
    let td = TrustDomain::new("example.org").unwrap();
    assert_eq!(td.id().as_str(), "spiffe://example.org");
    assert!(!td.id().is_workload());
    assert_eq!(
        TrustDomain::new("Example.org"),
        Err(IdError::TrustDomainUpperCase)
    );
    assert_eq!(TrustDomain::new(""), Err(IdError::EmptyTrustDomain));
    assert!(TrustDomain::new("example.org/a").is_err());
    let id = SpiffeId::from_parts(&td, "/ns/x").unwrap();
    assert!(id.is_member_of(&td));
    assert!(!id.is_member_of(&TrustDomain::new("other.org").unwrap()));
}

#[test]
fn patterns_match_exactly_or_strictly_under() {
    let p = |s: &str| IdPattern::parse(s).unwrap();
    let id = |s: &str| SpiffeId::parse(s).unwrap();
    let batch = p("spiffe://td/ns/batch/*");
    assert!(batch.matches(&id("spiffe://td/ns/batch/job")));
    assert!(batch.matches(&id("spiffe://td/ns/batch/a/b")));
    assert!(!batch.matches(&id("spiffe://td/ns/batch")));
    assert!(!batch.matches(&id("spiffe://td/ns/batchx/job")));
    assert!(!batch.matches(&id("spiffe://other/ns/batch/job")));
    let all = p("spiffe://td/*");
    assert!(all.matches(&id("spiffe://td/anything")));
    assert!(!all.matches(&id("spiffe://td")));
    assert!(!all.matches(&id("spiffe://td2/x")));
    let exact = p("spiffe://td/a");
    assert!(exact.matches(&id("spiffe://td/a")));
    assert!(!exact.matches(&id("spiffe://td/a/b")));
    assert_eq!(batch.to_string(), "spiffe://td/ns/batch/*");
    assert!(IdPattern::parse("spiffe://*").is_err());
    for bad in ["spiffe://td/*/x", "spiffe://td/a*", "spiffe://td/a/**", "*"] {
        assert_eq!(IdPattern::parse(bad), Err(IdError::Wildcard), "{bad}");
    }
    assert_eq!(
        IdPattern::parse("spiffe://TD/*"),
        Err(IdError::TrustDomainUpperCase)
    );
}

/// A leaf built like ward-ca builds one; tests then break one rule at a time.
fn good_leaf() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI("spiffe://td/ns/a".try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

fn der_of(params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn profile_accepts_a_proper_leaf() {
    let leaf = SvidProfile::check(&der_of(&good_leaf())).unwrap();
    assert_eq!(leaf.id.as_str(), "spiffe://td/ns/a");
    assert!(leaf.not_after > leaf.not_before);
    assert!(!leaf.serial_hex.is_empty());
}

#[test]
fn profile_refuses_each_broken_rule() {
    let uri = |s: &str| SanType::URI(s.try_into().unwrap());
    type Breaker = Box<dyn Fn(&mut CertificateParams)>;
    let cases: Vec<(&str, Breaker, &str)> = vec![
        (
            "two URI SANs",
            Box::new(move |p| p.subject_alt_names.push(uri("spiffe://td/ns/b"))),
            "multiple_uri_sans",
        ),
        (
            "no SAN",
            Box::new(|p| p.subject_alt_names.clear()),
            "no_uri_san",
        ),
        (
            "DNS only",
            Box::new(|p| p.subject_alt_names = vec![SanType::DnsName("a.td".try_into().unwrap())]),
            "no_uri_san",
        ),
        (
            "non-SPIFFE URI",
            Box::new(move |p| p.subject_alt_names = vec![uri("https://td/ns/a")]),
            "invalid_spiffe_id",
        ),
        (
            "upper-case td",
            Box::new(move |p| p.subject_alt_names = vec![uri("spiffe://TD/ns/a")]),
            "invalid_spiffe_id",
        ),
        (
            "percent td",
            Box::new(move |p| p.subject_alt_names = vec![uri("spiffe://t%64/a")]),
            "invalid_spiffe_id",
        ),
        (
            "trailing slash",
            Box::new(move |p| p.subject_alt_names = vec![uri("spiffe://td/a/")]),
            "invalid_spiffe_id",
        ),
        (
            "trust-domain ID",
            Box::new(move |p| p.subject_alt_names = vec![uri("spiffe://td")]),
            "not_workload_id",
        ),
        (
            "CA:TRUE",
            Box::new(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
            "ca_leaf",
        ),
        (
            "no basicConstraints",
            Box::new(|p| p.is_ca = IsCa::NoCa),
            "missing_basic_constraints",
        ),
        (
            "no keyUsage",
            Box::new(|p| p.key_usages.clear()),
            "missing_key_usage",
        ),
        (
            "keyCertSign",
            Box::new(|p| p.key_usages.push(KeyUsagePurpose::KeyCertSign)),
            "ca_key_usage",
        ),
        (
            "cRLSign",
            Box::new(|p| p.key_usages.push(KeyUsagePurpose::CrlSign)),
            "ca_key_usage",
        ),
        (
            "no digitalSignature",
            Box::new(|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]),
            "no_digital_signature",
        ),
        (
            "EKU without clientAuth",
            Box::new(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]),
            "extended_key_usage",
        ),
        (
            "EKU without serverAuth",
            Box::new(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]),
            "extended_key_usage",
        ),
    ];
    for (name, breaker, reason) in cases {
        let mut params = good_leaf();
        breaker(&mut params);
        let err = SvidProfile::check(&der_of(&params)).expect_err(name);
        assert_eq!(err.reason(), reason, "{name}: {err}");
    }
    // EKU absent altogether is allowed by the X509-SVID spec.
    let mut params = good_leaf();
    params.extended_key_usages.clear();
    assert!(SvidProfile::check(&der_of(&params)).is_ok());
}

#[test]
fn profile_counts_raw_uri_entries_even_when_not_utf8() {
    // Replace the second URI's bytes with invalid UTF-8 of the same length after encoding.
    let mut params = good_leaf();
    params
        .subject_alt_names
        .push(SanType::URI("spiffe://td/ns/zzzz".try_into().unwrap()));
    let mut der = der_of(&params);
    let needle = b"spiffe://td/ns/zzzz";
    let at = der.windows(needle.len()).position(|w| w == needle).unwrap();
    der[at + 15..at + 19].copy_from_slice(&[0xff, 0xfe, 0xff, 0xfe]);
    let err = SvidProfile::check(&der).unwrap_err();
    assert_eq!(err, ProfileError::MultipleUriSans { count: 2 });
}

#[test]
fn profile_refuses_garbage_and_trailing_bytes() {
    assert_eq!(SvidProfile::check(b"").unwrap_err().reason(), "malformed");
    assert_eq!(
        SvidProfile::check(&[0x30, 0x03, 1, 2, 3])
            .unwrap_err()
            .reason(),
        "malformed"
    );
    let mut der = der_of(&good_leaf());
    der.push(0);
    assert_eq!(SvidProfile::check(&der).unwrap_err().reason(), "malformed");
}

#[test]
fn serial_hex_drops_sign_padding() {
    assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[0x7f]), "7f");
}
