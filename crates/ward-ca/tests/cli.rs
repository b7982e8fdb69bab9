//! The real `ward-ca` binary against the real `openssl`: `init` + `issue` produce a chain that
//! `openssl verify -x509_strict` accepts for client and server use, the leaf reads back with
//! exactly ward's profile in openssl's own words, and every bad input is one line and exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WARD_CA: &str = env!("CARGO_BIN_EXE_ward-ca");
const ID: &str = "spiffe://example.org/ns/web/sa/frontend";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (is openssl installed? `make test` installs it)")
    })
}

fn ward(dir: &Path, args: &[&str]) -> Output {
    run(Command::new(WARD_CA).current_dir(dir).args(args))
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    run(Command::new("openssl").current_dir(dir).args(args))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA in a fresh directory plus an openssl-made P-256 CSR that asks for names and a CA
/// flag it must not get.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    ok(&ward(
        &dir,
        &["init", "--dir", "ca", "--trust-domain", "example.org"],
    ));
    ok(&openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "w.key",
            "-out",
            "w.csr",
            "-subj",
            "/CN=evil/O=attacker",
            "-addext",
            "subjectAltName=URI:spiffe://example.org/admin,DNS:evil.example.com",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    ));
    (tmp, dir)
}

#[test]
fn issued_chain_passes_openssl_strict_verify_for_client_and_server() {
    let (_tmp, dir) = setup();
    ok(&ward(
        &dir,
        &[
            "issue",
            "--dir",
            "ca",
            "--csr",
            "w.csr",
            "--id",
            ID,
            "--out",
            "chain.pem",
        ],
    ));
    let chain = std::fs::read_to_string(dir.join("chain.pem")).unwrap();
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf then issuer"
    );
    let leaf_end = chain.find("-----END CERTIFICATE-----").unwrap() + 26;
    std::fs::write(dir.join("leaf.pem"), &chain[..leaf_end]).unwrap();
    for purpose in ["sslclient", "sslserver"] {
        let out = ok(&openssl(
            &dir,
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                "ca/root.pem",
                "-untrusted",
                "ca/issuer.pem",
                "leaf.pem",
            ],
        ));
        assert_eq!(out.trim(), "leaf.pem: OK", "{purpose}");
    }
    // The issuer alone against the root, strictly.
    let out = ok(&openssl(
        &dir,
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "ca/root.pem",
            "ca/issuer.pem",
        ],
    ));
    assert_eq!(out.trim(), "ca/issuer.pem: OK");
    // The workload key openssl made is the one certified.
    let cert_key = ok(&openssl(
        &dir,
        &["x509", "-in", "leaf.pem", "-noout", "-pubkey"],
    ));
    let csr_key = ok(&openssl(&dir, &["pkey", "-in", "w.key", "-pubout"]));
    assert_eq!(cert_key, csr_key);
}

#[test]
fn leaf_profile_in_openssl_words() {
    let (_tmp, dir) = setup();
    let pem = ok(&ward(
        &dir,
        &[
            "issue", "--dir", "ca", "--csr", "w.csr", "--id", ID, "--ttl", "10m",
        ],
    ));
    std::fs::write(dir.join("chain.pem"), &pem).unwrap();
    let text = ok(&openssl(
        &dir,
        &["x509", "-in", "chain.pem", "-noout", "-text"],
    ));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let after = |header: &str| {
        let i = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no {header:?} in\n{text}"));
        lines[i + 1]
    };
    assert_eq!(
        after("X509v3 Subject Alternative Name: critical"),
        format!("URI:{ID}")
    );
    assert_eq!(after("X509v3 Basic Constraints: critical"), "CA:FALSE");
    assert_eq!(after("X509v3 Key Usage: critical"), "Digital Signature");
    assert_eq!(
        after("X509v3 Extended Key Usage:"),
        "TLS Web Server Authentication, TLS Web Client Authentication"
    );
    assert!(lines.contains(&"X509v3 Subject Key Identifier:"), "{text}");
    assert!(
        lines.contains(&"X509v3 Authority Key Identifier:"),
        "{text}"
    );
    assert!(lines.contains(&"Subject:"), "subject must be empty: {text}");
    assert!(lines.contains(&"ASN1 OID: prime256v1"), "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == "Signature Algorithm: ecdsa-with-SHA256")
            .count(),
        2
    );
    assert!(
        !text.contains("evil") && !text.contains("/admin") && !text.contains("attacker"),
        "CSR names leaked: {text}"
    );
    // 10 minutes plus the 30 s backdate.
    let dates = ok(&openssl(
        &dir,
        &[
            "x509",
            "-in",
            "chain.pem",
            "-noout",
            "-startdate",
            "-enddate",
        ],
    ));
    let parse = |prefix: &str| {
        let line = dates.lines().find(|l| l.starts_with(prefix)).unwrap();
        let out = run(Command::new("date").args(["-u", "+%s", "-d", &line[prefix.len()..]]));
        ok(&out).trim().parse::<i64>().unwrap()
    };
    assert_eq!(parse("notAfter=") - parse("notBefore="), 630);
}

/// Every bad input: exit status 1, exactly one line on stderr naming the problem, no panic,
/// and nothing written.
#[test]
fn bad_inputs_get_one_line_errors() {
    let (_tmp, dir) = setup();
    ok(&openssl(
        &dir,
        &[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            "k384.pem",
        ],
    ));
    ok(&openssl(
        &dir,
        &[
            "req", "-new", "-key", "k384.pem", "-out", "p384.csr", "-subj", "/CN=x",
        ],
    ));
    ok(&openssl(
        &dir,
        &["req", "-in", "w.csr", "-outform", "DER", "-out", "w.der"],
    ));
    let mut der = std::fs::read(dir.join("w.der")).unwrap();
    let n = der.len();
    der[n - 3] ^= 0x01;
    std::fs::write(dir.join("tampered.der"), der).unwrap();
    std::fs::write(dir.join("garbage.csr"), "hello").unwrap();

    let issue = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["issue", "--dir", "ca", "--csr", "w.csr"];
        v.extend_from_slice(extra);
        v
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["init", "--dir", "ca", "--trust-domain", "example.org"],
            "pass --force",
        ),
        (
            vec!["init", "--dir", "x", "--trust-domain", "Example.org"],
            "lower-case",
        ),
        (
            vec!["init", "--dir", "x", "--trust-domain", "example.org:443"],
            "port",
        ),
        (
            issue(&["--id", "spiffe://example.org/a/../b"]),
            "'..' segment",
        ),
        (issue(&["--id", "http://example.org/a"]), "spiffe://"),
        (issue(&["--id", "spiffe://example.org/a/"]), "end with '/'"),
        (
            issue(&["--id", "spiffe://other.org/a"]),
            "not in this CA's trust domain",
        ),
        (issue(&["--id", "spiffe://example.org"]), "has no path"),
        (
            issue(&["--id", ID, "--ttl", "30s"]),
            "outside the allowed range 1m to 24h",
        ),
        (
            issue(&["--id", ID, "--ttl", "25h"]),
            "outside the allowed range",
        ),
        (issue(&["--id", ID, "--ttl", "soon"]), "invalid duration"),
        (
            vec!["issue", "--dir", "ca", "--csr", "missing.csr", "--id", ID],
            "cannot read",
        ),
        (
            vec!["issue", "--dir", "ca", "--csr", "garbage.csr", "--id", ID],
            "CSR is malformed",
        ),
        (
            vec!["issue", "--dir", "ca", "--csr", "tampered.der", "--id", ID],
            "CSR signature does not verify",
        ),
        (
            vec!["issue", "--dir", "ca", "--csr", "p384.csr", "--id", ID],
            "ECDSA P-256",
        ),
        (
            vec!["issue", "--dir", "nowhere", "--csr", "w.csr", "--id", ID],
            "ward-ca init",
        ),
    ];
    for (args, want) in cases {
        let out = ward(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ward-ca: error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a certificate");
    }

    // Malformed command lines: exit 2, still one line.
    for args in [
        vec!["issue", "--dir", "ca"],
        vec!["frobnicate"],
        vec!["init", "--bogus"],
    ] {
        let out = ward(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ward-ca: error: "), "{args:?}: {stderr}");
    }
    let out = ward(&dir, &["issue", "--dir", "ca", "--id", ID]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--csr <FILE>"));
    let out = ward(
        &dir,
        &["issue", "--dir", "ca", "--csr", "/dev/zero", "--id", ID],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a CSR file"));

    // A key file readable by others is refused by name, with the fix.
    let key = dir.join("ca/issuer.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = ward(&dir, &issue(&["--id", ID]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("ca/issuer.key") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(
        !dir.join("x").exists(),
        "a refused init must create nothing"
    );
}

/// Operator commands take their config from `WARD_CA_CONFIG` when `--config` is not given
/// (and `--config` still wins).
#[test]
fn the_config_defaults_from_ward_ca_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&ward(
        dir,
        &["init", "--dir", "ca", "--trust-domain", "example.org"],
    ));
    std::fs::write(
        dir.join("ca.yaml"),
        "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:0\"\nstate: state.db\n",
    )
    .unwrap();
    let with_env = |args: &[&str]| {
        run(Command::new(WARD_CA)
            .current_dir(dir)
            .env("WARD_CA_CONFIG", "ca.yaml")
            .args(args))
    };
    assert!(ok(&with_env(&["check"])).contains("ok"));
    let token = ok(&with_env(&[
        "token",
        "create",
        "--id",
        "spiffe://example.org/ns/web/sa/frontend",
    ]));
    assert!(!token.trim().is_empty());
    assert!(ok(&with_env(&["token", "list"])).contains("spiffe://example.org/ns/web/sa/frontend"));
    let wrong = with_env(&["check", "--config", "missing.yaml"]);
    assert!(
        !wrong.status.success(),
        "--config wins over the environment"
    );
    let none = ward(dir, &["token", "list"]);
    assert_eq!(
        none.status.code(),
        Some(2),
        "without either, --config is required"
    );
}
