//! Tests of CA creation and issuance, reading every issued certificate back with x509-parser.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration as StdDuration;

use rcgen::{CertificateParams, KeyPair, SanType};
use time::{Duration, OffsetDateTime};
use ward_identity::{SpiffeId, TrustDomain};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_SIG_ECDSA_WITH_SHA256, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_NAME_CONSTRAINTS, OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::error::{CaError, CsrError};
use crate::authority::issuer::Issuer;
use crate::keys::dir::{self, BUNDLE, ISSUER_CERT, ISSUER_KEY, ROOT_CERT, ROOT_KEY};

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn new_ca() -> (tempfile::TempDir, Issuer) {
    let dir = tempfile::tempdir().unwrap();
    dir::init(&dir.path().join("ca"), &td(), false).unwrap();
    let issuer = Issuer::load(&dir.path().join("ca")).unwrap();
    (dir, issuer)
}

/// A CSR that asks for everything it should not get.
fn greedy_csr(key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["evil.example.com".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/admin".try_into().unwrap(),
    ));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.serialize_request(key).unwrap().der().to_vec()
}

fn csr() -> Vec<u8> {
    greedy_csr(&KeyPair::generate().unwrap())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_keys_0600_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    dir::init(&ca, &td(), false).unwrap();
    assert_eq!(mode(&ca), 0o700);
    assert_eq!(mode(&ca.join(ROOT_KEY)), 0o600);
    assert_eq!(mode(&ca.join(ISSUER_KEY)), 0o600);
    assert_eq!(mode(&ca.join(dir::JWT_KEY)), 0o600);
    assert_eq!(mode(&ca.join(ROOT_CERT)), 0o644);
    assert_eq!(
        std::fs::read(ca.join(BUNDLE)).unwrap(),
        std::fs::read(ca.join(ROOT_CERT)).unwrap()
    );
    let before = std::fs::read(ca.join(ROOT_CERT)).unwrap();
    let err = dir::init(&ca, &td(), false).unwrap_err();
    assert!(matches!(err, CaError::Exists { .. }), "{err}");
    assert_eq!(
        std::fs::read(ca.join(ROOT_CERT)).unwrap(),
        before,
        "refused init changed files"
    );
    dir::init(&ca, &td(), true).unwrap();
    assert_ne!(
        std::fs::read(ca.join(ROOT_CERT)).unwrap(),
        before,
        "--force must replace the CA"
    );
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&ca)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    // Four CA files, the JWT-SVID key, the bundle and the rotation journal.
    assert_eq!(names.len(), 7, "{names:?}");
}

#[test]
fn issuer_certificate_profile() {
    let (_dir, issuer) = new_ca();
    let (_, cert) = X509Certificate::from_der(issuer.issuer_cert()).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    assert!(cert
        .get_extension_unique(&OID_X509_EXT_NAME_CONSTRAINTS)
        .unwrap()
        .is_none());
    assert!(cert
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .is_some());
    assert!(cert
        .get_extension_unique(&OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .is_some());
    assert_eq!(issuer.trust_domain(), &td());
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!(
        (365 * 86_400..=365 * 86_400 + 60).contains(&lifetime),
        "{lifetime}"
    );
    let (_, root) = X509Certificate::from_der(issuer.root()).unwrap();
    let root_life = root.validity().not_after.timestamp() - root.validity().not_before.timestamp();
    assert!(root_life >= 3650 * 86_400, "{root_life}");
}

#[test]
fn leaf_has_exactly_the_profile_and_ignores_the_csr() {
    let (_dir, issuer) = new_ca();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let want = id("spiffe://example.org/ns/web/sa/frontend");
    let issued = issuer
        .issue(&csr(), &want, &[], StdDuration::from_secs(3600), now)
        .unwrap();
    assert_eq!(issued.chain.len(), 2);
    assert_eq!(&issued.chain[1], issuer.issuer_cert());
    let (rest, leaf) = X509Certificate::from_der(&issued.chain[0]).unwrap();
    assert!(rest.is_empty());

    assert!(
        leaf.subject().iter().next().is_none(),
        "subject must be empty"
    );
    let san = leaf
        .get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME)
        .unwrap()
        .unwrap();
    assert!(
        san.critical,
        "SAN must be critical when the subject is empty"
    );
    let ParsedExtension::SubjectAlternativeName(names) = san.parsed_extension() else {
        panic!("SAN did not parse");
    };
    assert_eq!(names.general_names, vec![GeneralName::URI(want.as_str())]);

    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && !eku.any && eku.other.is_empty());
    let ski = leaf
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap();
    assert!(ski.is_some());
    let ParsedExtension::AuthorityKeyIdentifier(aki) = leaf
        .get_extension_unique(&OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    else {
        panic!("AKI did not parse");
    };
    let (_, ica) = X509Certificate::from_der(issuer.issuer_cert()).unwrap();
    let ParsedExtension::SubjectKeyIdentifier(ica_ski) = ica
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    else {
        panic!("issuer SKI did not parse");
    };
    assert_eq!(aki.key_identifier.as_ref().unwrap().0, ica_ski.0);
    assert_eq!(leaf.issuer(), ica.subject());

    assert_eq!(
        leaf.signature_algorithm.algorithm,
        OID_SIG_ECDSA_WITH_SHA256
    );
    let serial = leaf.raw_serial();
    assert!(serial[0] & 0x80 == 0, "serial must be positive");
    // 128 random bits in minimal DER: usually 16 bytes, 17 with a sign byte when the top bit
    // is set, fewer when the random value starts with zero bytes (1 run in ~256).
    assert!(
        (8..=16).contains(&serial.len()) || (serial.len() == 17 && serial[0] == 0),
        "{serial:?}"
    );
    assert_eq!(
        leaf.validity().not_before.timestamp(),
        (now - Duration::seconds(30)).unix_timestamp()
    );
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        (now + Duration::hours(1)).unix_timestamp()
    );
    leaf.verify_signature(Some(ica.public_key())).unwrap();
}

#[test]
fn not_after_is_clamped_to_the_issuer() {
    let (_dir, issuer) = new_ca();
    let (_, ica) = X509Certificate::from_der(issuer.issuer_cert()).unwrap();
    let ica_end = ica.validity().not_after.to_datetime();
    let now = ica_end - Duration::minutes(10);
    let issued = issuer
        .issue(
            &csr(),
            &id("spiffe://example.org/a"),
            &[],
            StdDuration::from_secs(3600),
            now,
        )
        .unwrap();
    assert_eq!(issued.leaf.not_after, ica_end.unix_timestamp());
    let err = issuer
        .issue(
            &csr(),
            &id("spiffe://example.org/a"),
            &[],
            StdDuration::from_secs(3600),
            ica_end,
        )
        .unwrap_err();
    assert!(matches!(err, CaError::IssuerNotValid { .. }), "{err}");
}

#[test]
fn refuses_bad_requests() {
    let (_dir, issuer) = new_ca();
    let now = OffsetDateTime::now_utc();
    let hour = StdDuration::from_secs(3600);
    let a = id("spiffe://example.org/a");
    let cases: Vec<(CaError, &str)> = vec![
        (
            issuer
                .issue(&csr(), &a, &[], StdDuration::from_secs(9), now)
                .unwrap_err(),
            "ttl",
        ),
        (
            issuer
                .issue(&csr(), &a, &[], StdDuration::from_secs(86_401), now)
                .unwrap_err(),
            "ttl",
        ),
        (
            issuer
                .issue(&csr(), &id("spiffe://other.org/a"), &[], hour, now)
                .unwrap_err(),
            "foreign",
        ),
        (
            issuer
                .issue(&csr(), &id("spiffe://example.org"), &[], hour, now)
                .unwrap_err(),
            "workload",
        ),
        (
            issuer
                .issue(b"\x30\x03\x02\x01\x00", &a, &[], hour, now)
                .unwrap_err(),
            "malformed",
        ),
    ];
    for (err, what) in cases {
        let ok = match what {
            "ttl" => matches!(err, CaError::Ttl { .. }),
            "foreign" => matches!(err, CaError::ForeignId { .. }),
            "workload" => matches!(err, CaError::NotWorkload(_)),
            _ => matches!(err, CaError::Csr(CsrError::Malformed(_))),
        };
        assert!(ok, "{what}: {err}");
    }
    // Boundaries are inclusive.
    issuer
        .issue(&csr(), &a, &[], StdDuration::from_secs(10), now)
        .unwrap();
    issuer
        .issue(&csr(), &a, &[], StdDuration::from_secs(86_400), now)
        .unwrap();

    // A tampered signature: flip a byte inside the signature BIT STRING (the tail).
    let mut tampered = csr();
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    let err = issuer.issue(&tampered, &a, &[], hour, now).unwrap_err();
    assert!(matches!(err, CaError::Csr(CsrError::BadSignature)), "{err}");

    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let err = issuer
        .issue(&greedy_csr(&p384), &a, &[], hour, now)
        .unwrap_err();
    assert!(
        matches!(err, CaError::Csr(CsrError::UnsupportedKey(_))),
        "{err}"
    );
}

#[test]
fn dns_names_are_added_only_when_asked_and_validated() {
    let (_dir, issuer) = new_ca();
    let now = OffsetDateTime::now_utc();
    let a = id("spiffe://example.org/a");
    let hour = StdDuration::from_secs(3600);
    let issued = issuer
        .issue(&csr(), &a, &["localhost".into()], hour, now)
        .unwrap();
    let (_, leaf) = X509Certificate::from_der(&issued.chain[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![
            GeneralName::URI(a.as_str()),
            GeneralName::DNSName("localhost")
        ]
    );
    for bad in ["*.example.org", "bad name", ""] {
        let err = issuer
            .issue(&csr(), &a, &[bad.into()], hour, now)
            .unwrap_err();
        assert!(matches!(err, CaError::InvalidDnsName(_)), "{bad}: {err}");
    }
}

#[test]
fn serials_are_distinct() {
    let (_dir, issuer) = new_ca();
    let csr = csr();
    let now = OffsetDateTime::now_utc();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let issued = issuer
            .issue(
                &csr,
                &id("spiffe://example.org/a"),
                &[],
                StdDuration::from_secs(60),
                now,
            )
            .unwrap();
        assert!(seen.insert(issued.leaf.serial_hex));
    }
}

#[test]
fn load_refuses_unsafe_or_inconsistent_material() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    dir::init(&ca, &td(), false).unwrap();

    std::fs::set_permissions(ca.join(ISSUER_KEY), std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = Issuer::load(&ca).unwrap_err().to_string();
    assert!(
        err.contains("readable by group/other") && err.contains("0640"),
        "{err}"
    );
    std::fs::set_permissions(ca.join(ISSUER_KEY), std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::copy(ca.join(ROOT_KEY), ca.join(ISSUER_KEY)).unwrap();
    let err = Issuer::load(&ca).unwrap_err().to_string();
    assert!(err.contains("does not match issuer.pem"), "{err}");

    let other = dir.path().join("other");
    dir::init(&other, &td(), false).unwrap();
    std::fs::copy(other.join(ROOT_CERT), ca.join(ROOT_CERT)).unwrap();
    std::fs::copy(other.join(ISSUER_KEY), ca.join(ISSUER_KEY)).unwrap();
    std::fs::copy(other.join(ISSUER_CERT), ca.join(ISSUER_CERT)).unwrap();
    Issuer::load(&ca).unwrap();
    std::fs::copy(ca.join(BUNDLE), ca.join(ROOT_CERT)).unwrap();
    let err = Issuer::load(&ca).unwrap_err().to_string();
    assert!(err.contains("not signed by root.pem"), "{err}");

    let err = Issuer::load(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ward-ca init"), "{err}");
}

/// The daemon config shown in docs/ca.md is accepted as documented.
#[test]
fn docs_ca_config_example_parses() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ca.md")).unwrap();
    let block = doc
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let cfg = crate::config::CaConfig::parse("docs/ca.md", block, Path::new("/")).unwrap();
    assert_eq!(cfg.trust_domain, td());
    assert!(cfg.join_token && cfg.kubernetes.is_some());
    assert_eq!(cfg.admins.len(), 1);
    // And an unknown key in it is refused with its location.
    let err =
        crate::config::CaConfig::parse("x.yaml", &format!("{block}listn: x\n"), Path::new("/"))
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `listn`"), "{err}");
}
