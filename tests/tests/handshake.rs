//! Issued identities talking mutual TLS over real loopback sockets: the right peer IDs are
//! exposed on both sides, and every kind of bad certificate is refused by the side verifying it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use ward_e2e::{
    handshake, handshake_configs, leaf_params, raw_client_config, raw_server_config, store_with,
    Material, TestCa,
};
use ward_tls::{CertStore, Resumption, StoreError};

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";

#[test]
fn issued_identities_see_each_other() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let out = handshake(&server, &client, BACKEND);
    assert_eq!(out.server_saw.unwrap().as_str(), FRONTEND);
    assert_eq!(out.client_saw.unwrap().as_str(), BACKEND);
    // Patterns work for the expected server identity too.
    let out = handshake(&server, &client, "spiffe://example.org/ns/api/*");
    assert_eq!(out.client_saw.unwrap().as_str(), BACKEND);
}

#[test]
fn client_refuses_a_server_with_an_unexpected_id() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue("spiffe://example.org/ns/evil/sa/impostor"));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let out = handshake(&server, &client, BACKEND);
    let err = out.client_saw.unwrap_err();
    assert!(
        err.contains("expected spiffe://example.org/ns/api/sa/backend"),
        "{err}"
    );
    assert!(out.server_saw.is_err());
}

#[test]
fn a_leaf_from_another_root_is_refused_both_ways() {
    let ca = TestCa::new("example.org");
    let rogue = TestCa::new("example.org"); // same trust domain, different root
    let server = store_with(&ca, ca.issue(BACKEND));
    // A rogue client, presenting a chain the server's bundle does not anchor.
    let client = raw_client_config(ca.bundles(), rogue.issue(FRONTEND), BACKEND);
    let out = handshake_configs(
        Arc::new(
            ward_tls::server_config(&server, None, &[], Resumption::Off, &Default::default())
                .unwrap(),
        ),
        Arc::new(client),
    );
    let err = out.server_saw.unwrap_err();
    assert!(
        err.contains("not issued by a root in the trust bundle"),
        "{err}"
    );
    // A rogue server.
    let server = raw_server_config(ca.bundles(), rogue.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let client = ward_tls::client_config(
        &client,
        vec![BACKEND.parse().unwrap()],
        &[],
        Resumption::Off,
        &Default::default(),
    )
    .unwrap();
    let out = handshake_configs(Arc::new(server), Arc::new(client));
    let err = out.client_saw.unwrap_err();
    assert!(
        err.contains("not issued by a root in the trust bundle"),
        "{err}"
    );
}

#[test]
fn a_leaf_from_an_unknown_trust_domain_is_refused() {
    let ca = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = raw_client_config(ca.bundles(), other.issue("spiffe://other.org/x"), BACKEND);
    let out = handshake_configs(
        Arc::new(
            ward_tls::server_config(&server, None, &[], Resumption::Off, &Default::default())
                .unwrap(),
        ),
        Arc::new(client),
    );
    let err = out.server_saw.unwrap_err();
    assert!(
        err.contains("no trust bundle for trust domain \"other.org\""),
        "{err}"
    );
}

/// Hostile client certificates signed by the real issuer key: each is refused by the server
/// with a reason an operator can read.
#[test]
fn hostile_client_certificates_are_refused() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let server_config = Arc::new(
        ward_tls::server_config(&server, None, &[], Resumption::Off, &Default::default()).unwrap(),
    );
    type Breaker = fn(&mut rcgen::CertificateParams);
    let cases: &[(&str, Breaker, &str)] = &[
        (
            "CA:TRUE leaf",
            |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
            "leaf certificate is a CA",
        ),
        (
            "two URI SANs",
            |p| {
                p.subject_alt_names
                    .push(SanType::URI("spiffe://example.org/b".try_into().unwrap()))
            },
            "2 URI SANs",
        ),
        (
            "expired",
            |p| {
                let now = time::OffsetDateTime::now_utc();
                p.not_before = now - time::Duration::hours(3);
                p.not_after = now - time::Duration::hours(2);
            },
            "certificate has expired",
        ),
        (
            "not yet valid",
            |p| {
                let now = time::OffsetDateTime::now_utc();
                p.not_before = now + time::Duration::hours(2);
                p.not_after = now + time::Duration::hours(3);
            },
            "certificate is not valid yet",
        ),
        (
            "keyCertSign",
            |p| p.key_usages.push(KeyUsagePurpose::KeyCertSign),
            "keyCertSign",
        ),
        (
            "EKU without clientAuth",
            |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth],
            "clientAuth",
        ),
        (
            "no basicConstraints",
            |p| p.is_ca = IsCa::NoCa,
            "basicConstraints",
        ),
        (
            "non-SPIFFE URI",
            |p| {
                p.subject_alt_names =
                    vec![SanType::URI("https://example.org/a".try_into().unwrap())]
            },
            "spiffe://",
        ),
    ];
    for (name, breaker, expect) in cases {
        let mut params = leaf_params(FRONTEND);
        breaker(&mut params);
        let client = raw_client_config(ca.bundles(), ca.forge(&params), BACKEND);
        let out = handshake_configs(server_config.clone(), Arc::new(client));
        let err = out.server_saw.expect_err(name);
        assert!(err.contains(expect), "{name}: {err}");
        assert!(out.client_saw.is_err(), "{name}: client must not complete");
    }
    // The same forge path with the profile intact is accepted, so the refusals above are
    // caused by the broken rule and nothing else.
    let client = raw_client_config(ca.bundles(), ca.forge(&leaf_params(FRONTEND)), BACKEND);
    let out = handshake_configs(server_config, Arc::new(client));
    assert_eq!(out.server_saw.unwrap().as_str(), FRONTEND);
}

#[test]
fn store_refuses_a_key_that_does_not_match_and_keeps_the_old_identity() {
    let ca = TestCa::new("example.org");
    let good = ca.issue(FRONTEND);
    let store = CertStore::new(ca.issuer.trust_domain().clone(), ca.bundles());
    let first = store
        .publish(good.chain.clone(), good.key.clone_key())
        .unwrap();
    let other = ca.issue(FRONTEND);
    let err = store.publish(good.chain.clone(), other.key).unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch), "{err}");
    assert_eq!(
        store.current().unwrap().leaf().serial_hex,
        first.leaf().serial_hex
    );
}

#[test]
fn store_refuses_invalid_chains() {
    let ca = TestCa::new("example.org");
    let rogue = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let store = CertStore::new(ca.issuer.trust_domain().clone(), ca.bundles());
    let Material { chain, key } = rogue.issue(FRONTEND);
    assert!(matches!(
        store.publish(chain, key),
        Err(StoreError::Invalid(_))
    ));
    let mut expired = leaf_params(FRONTEND);
    expired.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    expired.not_after = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let Material { chain, key } = ca.forge(&expired);
    let err = store.publish(chain, key).unwrap_err();
    assert!(err.to_string().contains("certificate has expired"), "{err}");
    let Material { chain, key } = other.issue("spiffe://other.org/x");
    assert!(store.publish(chain, key).is_err());
    assert!(matches!(
        store.publish(Vec::new(), ca.issue(FRONTEND).key),
        Err(StoreError::EmptyChain)
    ));
    assert!(
        store.current().is_none(),
        "nothing invalid was ever published"
    );
}

#[test]
fn a_renewed_identity_reaches_new_handshakes() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client = store_with(&ca, ca.issue(FRONTEND));
    let server_config = Arc::new(
        ward_tls::server_config(&server, None, &[], Resumption::Off, &Default::default()).unwrap(),
    );
    let client_config = Arc::new(
        ward_tls::client_config(
            &client,
            vec![BACKEND.parse().unwrap()],
            &[],
            Resumption::Off,
            &Default::default(),
        )
        .unwrap(),
    );
    let before = server.current().unwrap().leaf().serial_hex.clone();
    handshake_configs(server_config.clone(), client_config.clone())
        .client_saw
        .unwrap();
    let Material { chain, key } = ca.issue(BACKEND);
    let renewed = server.publish(chain, key).unwrap();
    assert_ne!(renewed.leaf().serial_hex, before);
    // The same (unchanged) configs now present the renewed certificate.
    let mut rx = server.subscribe();
    rx.mark_changed();
    let out = handshake_configs(server_config, client_config);
    assert_eq!(out.client_saw.unwrap().as_str(), BACKEND);
    assert_eq!(
        rx.borrow_and_update().as_ref().unwrap().leaf().serial_hex,
        renewed.leaf().serial_hex
    );
}

#[test]
fn revoked_certificates_are_refused_by_serial_or_by_id() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let client_material = ca.issue(FRONTEND);
    let serial = ward_identity::SvidProfile::check(&client_material.chain[0])
        .unwrap()
        .serial_hex;
    let client = store_with(&ca, client_material);
    assert!(handshake(&server, &client, BACKEND).server_saw.is_ok());

    let revoke = |r: ward_tls::Revocation| {
        let mut bundles = server.bundles().current().as_ref().clone();
        bundles.set_revocations(vec![r]);
        server.bundles().replace(bundles);
    };
    revoke(ward_tls::Revocation {
        spiffe_id: None,
        serial: Some(serial),
        revoked_at: 0,
    });
    let err = handshake(&server, &client, BACKEND).server_saw.unwrap_err();
    assert!(err.contains("revoked"), "{err}");

    // An ID revocation covers certificates issued before it, not ones issued after.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    revoke(ward_tls::Revocation {
        spiffe_id: Some(FRONTEND.into()),
        serial: None,
        revoked_at: now + 3600,
    });
    assert!(
        handshake(&server, &store_with(&ca, ca.issue(FRONTEND)), BACKEND)
            .server_saw
            .is_err()
    );
    revoke(ward_tls::Revocation {
        spiffe_id: Some(FRONTEND.into()),
        serial: None,
        revoked_at: now - 3600,
    });
    assert!(
        handshake(&server, &store_with(&ca, ca.issue(FRONTEND)), BACKEND)
            .server_saw
            .is_ok()
    );
}

/// Clocks disagree by up to two minutes: a certificate whose notBefore is up to
/// `MAX_CLOCK_SKEW_SECS` ahead of our clock (a CA whose clock runs ahead issued it just now)
/// is accepted, by a peer and by the store publishing it; further ahead it is refused.
#[test]
fn clock_skew_of_two_minutes_is_tolerated_and_no_more() {
    let ca = TestCa::new("example.org");
    let server = store_with(&ca, ca.issue(BACKEND));
    let server_config = Arc::new(
        ward_tls::server_config(&server, None, &[], Resumption::Off, &Default::default()).unwrap(),
    );
    let ahead = |secs: i64| {
        let mut p = leaf_params(FRONTEND);
        let now = time::OffsetDateTime::now_utc();
        // Issued "now" by a CA `secs` ahead of us, backdated 30 s as ward-ca does.
        p.not_before = now + time::Duration::seconds(secs - 30);
        p.not_after = now + time::Duration::seconds(secs + 3600);
        ca.forge(&p)
    };
    let skew = i64::try_from(ward_tls::verify::MAX_CLOCK_SKEW_SECS).unwrap();
    assert!(skew >= 150, "two minutes and the 30 s backdating must fit");
    for secs in [60, 120, skew] {
        let client = raw_client_config(ca.bundles(), ahead(secs), BACKEND);
        let out = handshake_configs(server_config.clone(), Arc::new(client));
        assert_eq!(out.server_saw.unwrap().as_str(), FRONTEND, "{secs} s ahead");
        let Material { chain, key } = ahead(secs);
        store_with(&ca, ca.issue(FRONTEND))
            .publish(chain, key)
            .unwrap();
    }
    let client = raw_client_config(ca.bundles(), ahead(skew + 120), BACKEND);
    let out = handshake_configs(server_config, Arc::new(client));
    let err = out.server_saw.unwrap_err();
    assert!(err.contains("not valid yet"), "{err}");
}

/// A CA's revocation list covers its own trust domain only: a federated peer whose serial
/// happens to equal a revoked local serial (or whose ID a local CA tries to revoke) is not
/// refused by it. The same list without a domain would refuse it.
#[test]
fn revocations_cover_their_own_trust_domain_only() {
    let ca = TestCa::new("example.org");
    let foreign = TestCa::new("b.example");
    const PARTNER: &str = "spiffe://b.example/ns/pay/sa/billing";
    let server = store_with(&ca, ca.issue(BACKEND));
    let partner_material = foreign.issue(PARTNER);
    let serial = ward_identity::SvidProfile::check(&partner_material.chain[0])
        .unwrap()
        .serial_hex;
    let partner = store_with(&foreign, partner_material);
    // Each side holds the other's bundle, as federated sidecars do.
    let trust = |store: &CertStore, other: &TestCa, td: &str| {
        let mut b = store.bundles().current().as_ref().clone();
        let roots = ward_tls::pem::load_certs(&other.path().join("bundle.pem")).unwrap();
        b.insert(td.parse().unwrap(), roots).unwrap();
        store.bundles().replace(b);
    };
    trust(&server, &foreign, "b.example");
    trust(&partner, &ca, "example.org");
    assert!(handshake(&server, &partner, BACKEND).server_saw.is_ok());

    let revoked = || {
        vec![
            ward_tls::Revocation {
                spiffe_id: None,
                serial: Some(serial.clone()),
                revoked_at: 0,
            },
            ward_tls::Revocation {
                spiffe_id: Some(PARTNER.into()),
                serial: None,
                revoked_at: i64::MAX / 2,
            },
        ]
    };
    let mut b = server.bundles().current().as_ref().clone();
    b.set_revocations_of("example.org".parse().unwrap(), revoked());
    server.bundles().replace(b);
    assert!(
        handshake(&server, &partner, BACKEND).server_saw.is_ok(),
        "example.org's revocations reached a b.example identity"
    );
    let mut b = server.bundles().current().as_ref().clone();
    b.set_revocations(revoked());
    server.bundles().replace(b);
    assert!(handshake(&server, &partner, BACKEND).server_saw.is_err());
}
