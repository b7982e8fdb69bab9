//! The hostile-certificate battery: client or server identities that break one rule each,
//! made in the test (most signed by the real issuer key), with the refusal reason ward must
//! count for each. Used against the inbound listener, the outbound verifier and the CA.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::{leaf_params, Material, TestCa};

/// One hostile identity and the refusal reason (`ward_handshake_failures_total{reason}`) it
/// must produce; `None` where only "refused" can be promised (the 10 MB chain is cut by the
/// TLS layer before any verifier sees it).
#[derive(Debug)]
pub struct Hostile {
    /// What is wrong with it.
    pub name: &'static str,
    /// Chain (leaf first) and key.
    pub material: Material,
    /// The refusal reason ward reports.
    pub reason: Option<&'static str>,
}

fn with_uri(id: &str, uri: &str) -> CertificateParams {
    let mut p = leaf_params(id);
    p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    p
}

/// The subject of a ward CA certificate (organization and common name), as rcgen names it.
fn subject_of(der: &CertificateDer<'_>) -> DistinguishedName {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let mut dn = DistinguishedName::new();
    for o in cert.subject().iter_organization() {
        dn.push(DnType::OrganizationName, o.as_str().unwrap());
    }
    for cn in cert.subject().iter_common_name() {
        dn.push(DnType::CommonName, cn.as_str().unwrap());
    }
    dn
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// Every case of the battery, for a workload `id` of `ca`'s trust domain.
pub fn battery(ca: &TestCa, id: &str) -> Vec<Hostile> {
    let forged = |name, params: CertificateParams, reason| Hostile {
        name,
        material: ca.forge(&params),
        reason: Some(reason),
    };
    let mut out = Vec::new();

    let mut two = leaf_params(id);
    two.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/ns/evil/sa/second".try_into().unwrap(),
    ));
    out.push(forged("two URI SANs", two, "multiple_uri_sans"));
    out.push(forged(
        "a URI SAN that is not SPIFFE",
        with_uri(id, "https://example.org/ns/web"),
        "invalid_spiffe_id",
    ));
    out.push(forged(
        "upper-case trust domain",
        with_uri(id, "spiffe://Example.org/ns/web/sa/frontend"),
        "invalid_spiffe_id",
    ));
    out.push(forged(
        "percent-encoded trust domain",
        with_uri(id, "spiffe://example%2Eorg/ns/web"),
        "invalid_spiffe_id",
    ));
    out.push(forged(
        "trailing slash",
        with_uri(id, "spiffe://example.org/ns/web/"),
        "invalid_spiffe_id",
    ));
    out.push(forged(
        "empty segment",
        with_uri(id, "spiffe://example.org/ns//web"),
        "invalid_spiffe_id",
    ));
    out.push(forged(
        "dot segment",
        with_uri(id, "spiffe://example.org/ns/./web"),
        "invalid_spiffe_id",
    ));

    let mut ca_leaf = leaf_params(id);
    ca_leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    out.push(forged("CA:true leaf", ca_leaf, "ca_leaf"));
    let mut no_bc = leaf_params(id);
    no_bc.is_ca = IsCa::NoCa;
    out.push(forged(
        "no basic constraints",
        no_bc,
        "missing_basic_constraints",
    ));
    let mut cert_sign = leaf_params(id);
    cert_sign.key_usages.push(KeyUsagePurpose::KeyCertSign);
    out.push(forged("keyCertSign on a leaf", cert_sign, "ca_key_usage"));
    let mut server_only = leaf_params(id);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    out.push(forged(
        "EKU without clientAuth",
        server_only,
        "extended_key_usage",
    ));

    let now = OffsetDateTime::now_utc();
    let mut expired = leaf_params(id);
    (expired.not_before, expired.not_after) = (now - Duration::hours(3), now - Duration::hours(2));
    out.push(forged("expired", expired, "expired"));
    let mut future = leaf_params(id);
    (future.not_before, future.not_after) = (now + Duration::hours(2), now + Duration::hours(3));
    out.push(forged("not yet valid", future, "not_yet_valid"));

    // A self-signed look-alike of the real issuer (same subject), and a leaf it signs.
    let fake_key = KeyPair::generate().unwrap();
    let mut fake_params = leaf_params(id);
    fake_params.distinguished_name = subject_of(ca.issuer.issuer_cert());
    fake_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    fake_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    fake_params.extended_key_usages = Vec::new();
    fake_params.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
    let fake = fake_params.self_signed(&fake_key).unwrap();
    let signer = rcgen::Issuer::new(fake_params, fake_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params(id).signed_by(&leaf_key, &signer).unwrap();
    out.push(Hostile {
        name: "issued by a self-signed copy of the issuer's subject",
        material: Material {
            chain: vec![leaf.der().clone(), fake.der().clone()],
            key: key_der(&leaf_key),
        },
        reason: Some("unknown_issuer"),
    });

    // A real leaf presented with another CA's intermediate.
    let other = TestCa::new("example.org");
    let mut wrong = ca.issue(id);
    wrong.chain[1] = other.issuer.issuer_cert().clone();
    out.push(Hostile {
        name: "a chain with the wrong intermediate",
        material: wrong,
        reason: Some("unknown_issuer"),
    });

    // 10 MB of chain: the leaf, then the intermediate again and again.
    let mut huge = ca.issue(id);
    let filler: CertificateDer<'static> = huge.chain[1].clone();
    while huge.chain.iter().map(|c| c.len()).sum::<usize>() < 10 * 1024 * 1024 {
        huge.chain.push(filler.clone());
    }
    out.push(Hostile {
        name: "a 10 MB certificate chain",
        material: huge,
        reason: None,
    });

    let foreign = TestCa::new("other.org");
    out.push(Hostile {
        name: "a leaf of another trust domain",
        material: foreign.issue("spiffe://other.org/ns/web/sa/frontend"),
        reason: Some("unknown_trust_domain"),
    });
    out
}
