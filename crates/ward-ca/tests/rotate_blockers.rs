//! What holds `rotate finish` back: only certificates of the issuer being retired that still
//! matter (unexpired, unrevoked, not renewed). Revoked ones and those of a generation retired
//! before never block; `rotate status` says how many block and how to list them
//! (`certs list --issuer`, which shows each certificate's issuer and state), with the SHA-256
//! fingerprints of each generation's root and issuer. The real `ward-ca` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use support::*;
use ward_ca::Issuer;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";
const BACKEND: &str = "spiffe://example.org/ns/api/sa/backend";

fn serial_of(m: &ward_e2e::Material) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(m.chain[0].as_ref()).unwrap();
    ward_identity::serial_hex(cert.raw_serial())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_certificates_of_the_retiring_issuer_block_finish() {
    let h = Harness::start("").await;
    let dir = h.dir.path();
    let config = dir.join("ca.yaml");
    let config = config.to_str().unwrap();
    let ok = |args: &[&str]| {
        let (code, out) = ward_all(dir, args);
        assert_eq!(code, 0, "{args:?}: {out}");
        out
    };
    let first = Issuer::load(&h.ca.path())
        .unwrap()
        .issuer_serial()
        .to_owned();
    let frontend = h.recorded(FRONTEND);
    let _backend = h.recorded(BACKEND);

    ok(&["rotate", "prepare", "--config", config]);
    ok(&["rotate", "activate", "--config", config, "--force"]);
    let status = ok(&["rotate", "status", "--config", config]);
    assert!(
        status.contains("2 certificate(s) of the previous issuer"),
        "{status}"
    );
    assert!(
        status.contains(&format!("ward-ca certs list --issuer {first}")),
        "{status}"
    );
    let sha = ward_tls::files::sha256_hex(Issuer::load(&h.ca.path()).unwrap().root());
    assert!(status.contains(&format!("root SHA-256 {sha}")), "{status}");
    let listed = ok(&["certs", "list", "--config", config, "--issuer", &first]);
    // The CA's own serving certificate is listed too; it never blocks (the CA re-issues it).
    let valid = listed
        .lines()
        .filter(|l| l.contains(" valid ") && !l.ends_with("/ward/ca"))
        .count();
    assert_eq!(valid, 2, "{listed}");
    assert!(listed.contains("ISSUER"), "{listed}");

    // Both die: one revoked by serial, the other's ID revoked. Nothing blocks finish now.
    ok(&[
        "revoke",
        "--config",
        config,
        "--serial",
        &serial_of(&frontend),
    ]);
    ok(&["revoke", "--config", config, "--id", BACKEND]);
    let listed = ok(&["certs", "list", "--config", config, "--issuer", &first]);
    assert_eq!(
        listed.lines().filter(|l| l.contains(" revoked ")).count(),
        2,
        "{listed}"
    );
    ok(&["rotate", "finish", "--config", config]);

    // A certificate of the second generation outlives a forced finish of its rotation...
    let second = Issuer::load(&h.ca.path())
        .unwrap()
        .issuer_serial()
        .to_owned();
    let _late = h.recorded(FRONTEND);
    ok(&["rotate", "prepare", "--config", config]);
    ok(&["rotate", "activate", "--config", config, "--force"]);
    let (code, out) = ward(dir, &["rotate", "finish", "--config", config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("--issuer {second}")), "{out}");
    ok(&["rotate", "finish", "--config", config, "--force"]);
    // ...and does not block the next rotation, whose previous issuer signed nothing live.
    ok(&["rotate", "prepare", "--config", config]);
    ok(&["rotate", "activate", "--config", config, "--force"]);
    let status = ok(&["rotate", "status", "--config", config]);
    assert!(
        status.contains("nothing live depends on the previous issuer"),
        "{status}"
    );
    ok(&["rotate", "finish", "--config", config]);
}
