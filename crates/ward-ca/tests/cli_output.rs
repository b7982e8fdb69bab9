//! The real `ward-ca` binary's output for scripts and shells: `--output json` of `token list`,
//! `certs list` and `rotate status` (the field names docs/ca.md promises, values that follow
//! the state), completion scripts that a shell accepts, `--version` with the commit, and a
//! bad `--log-level` refused like any malformed command line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const WARD_CA: &str = env!("CARGO_BIN_EXE_ward-ca");
const ID: &str = "spiffe://example.org/ns/web/sa/frontend";

fn ward(dir: &Path, args: &[&str]) -> Output {
    Command::new(WARD_CA)
        .current_dir(dir)
        .env("WARD_CA_CONFIG", "ca.yaml")
        .args(args)
        .output()
        .unwrap()
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

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let text = ok(&ward(dir, &all));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

fn ca() -> tempfile::TempDir {
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
    tmp
}

#[test]
fn token_and_certs_lists_as_json() {
    let tmp = ca();
    let dir = tmp.path();
    assert_eq!(
        json(dir, &["token", "list"]),
        serde_json::json!({"tokens": []})
    );
    let secret = ok(&ward(dir, &["token", "create", "--id", ID]));
    ok(&ward(
        dir,
        &[
            "token",
            "create",
            "--id",
            "spiffe://example.org/ns/web/sa/other",
        ],
    ));
    let listed = json(dir, &["token", "list"]);
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let first = tokens.iter().find(|t| t["spiffe_id"] == ID).unwrap();
    assert_eq!(first["state"], "unused");
    assert!(first["used_at"].is_null() && first["revoked_at"].is_null());
    for field in ["token_id", "created_at", "expires_at"] {
        assert!(first[field].is_string(), "{field}: {first}");
    }
    assert!(first["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        !listed.to_string().contains(secret.trim()),
        "the token itself is never listed"
    );
    let token_id = first["token_id"].as_str().unwrap();
    ok(&ward(dir, &["token", "revoke", "--token-id", token_id]));
    let after = json(dir, &["token", "list"]);
    let revoked = after["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == token_id)
        .unwrap()
        .clone();
    assert_eq!(revoked["state"], "revoked");
    assert!(revoked["revoked_at"].is_string());

    assert_eq!(
        json(dir, &["certs", "list"]),
        serde_json::json!({"certificates": []})
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    std::fs::write(dir.join("w.csr"), csr.pem().unwrap()).unwrap();
    ok(&ward(
        dir,
        &[
            "issue", "--config", "ca.yaml", "--csr", "w.csr", "--id", ID, "--ttl", "10m",
        ],
    ));
    let certs = json(dir, &["certs", "list", "--id", ID]);
    let cert = &certs["certificates"][0];
    assert_eq!(cert["spiffe_id"], ID);
    assert_eq!(cert["state"], "valid");
    assert_eq!(cert["attestor"], "cli");
    assert!(cert["renewed_from"].is_null());
    for field in ["serial", "issued_at", "not_before", "not_after", "client"] {
        assert!(cert[field].is_string(), "{field}: {cert}");
    }
    let serial = cert["serial"].as_str().unwrap().to_owned();
    ok(&ward(
        dir,
        &["revoke", "--serial", &serial, "--reason", "test"],
    ));
    let certs = json(dir, &["certs", "list"]);
    assert_eq!(certs["certificates"][0]["state"], "revoked");
    // Text stays the default, for people.
    assert!(ok(&ward(dir, &["certs", "list"])).starts_with("SERIAL"));
}

#[test]
fn rotate_status_as_json_follows_the_rotation() {
    let tmp = ca();
    let dir = tmp.path();
    let idle = json(dir, &["rotate", "status"]);
    assert_eq!(idle["phase"], "idle");
    assert_eq!(idle["generations"].as_array().unwrap().len(), 1);
    assert_eq!(idle["generations"][0]["role"], "signing");
    assert_eq!(idle["bundle_roots"], 1);
    assert!(idle["replicas"].is_null() && idle["ca_version"].is_null());
    assert!(idle["next_step"]
        .as_str()
        .unwrap()
        .contains("rotate prepare"));

    ok(&ward(dir, &["rotate", "prepare", "--root"]));
    let prepared = json(dir, &["rotate", "status"]);
    assert_eq!(prepared["phase"], "prepared");
    let roles: Vec<&str> = prepared["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["signing", "next"]);
    assert_eq!(prepared["bundle_roots"], 2);
    assert!(
        prepared["bundle_version"].as_u64().unwrap() > idle["bundle_version"].as_u64().unwrap()
    );
    assert_eq!(prepared["previous_live_certificates"], 0);
    let text = ok(&ward(dir, &["rotate", "status"]));
    assert!(
        text.contains("next:") && text.contains("bundle:   2 root(s)"),
        "{text}"
    );
}

#[test]
fn completions_version_and_log_level() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bash = ok(&ward(dir, &["completions", "bash"]));
    for word in ["rotate", "federation", "--output", "--log-level"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // bash itself accepts the script and then completes `ward-ca ro` to `rotate`.
    let script = dir.join("ward-ca.bash");
    std::fs::write(&script, &bash).unwrap();
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(ward-ca ro); COMP_CWORD=1; COMP_LINE='ward-ca ro'; COMP_POINT=10; f=$(complete -p ward-ca | sed -E 's/.*-F ([^ ]+).*/\\1/'); \"$f\" ward-ca ro ward-ca; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert_eq!(ok(&completed).trim(), "rotate");
    // Bash completes past the first word: the subcommands of `rotate`, and of `certs`.
    let bin = Path::new(WARD_CA);
    let offered = ward_e2e::kit::bash_completions(bin, &["ward-ca", "rotate", ""]);
    for step in ["prepare", "activate", "finish", "retire", "status"] {
        assert!(
            offered.iter().any(|o| o == step),
            "{step} not in {offered:?}"
        );
    }
    let offered = ward_e2e::kit::bash_completions(bin, &["ward-ca", "certs", "l"]);
    assert_eq!(offered, ["list"]);
    assert!(ok(&ward(dir, &["completions", "zsh"])).starts_with("#compdef ward-ca"));
    assert!(ok(&ward(dir, &["completions", "fish"])).contains("complete -c ward-ca"));

    let version = ok(&ward(dir, &["--version"]));
    assert!(
        version.starts_with(&format!("ward-ca {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );

    let bad = ward(dir, &["serve", "--config", "x.yaml", "--log-level", "=][="]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--log-level") && err.lines().count() == 1,
        "{err}"
    );

    let help = ok(&ward(dir, &["token", "list", "--help"]));
    assert!(
        help.contains("Example:") && help.contains("--output json"),
        "{help}"
    );
}
