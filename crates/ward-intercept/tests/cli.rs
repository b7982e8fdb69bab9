//! The `ward-intercept` command line: `print` shows the ruleset `apply` installs, a bad range
//! or a missing nft is one line and exit 1, and nothing is applied then. (The rules at work,
//! in network namespaces with real traffic: ward-proxy's `tests/intercept.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ward-intercept");

#[test]
fn print_shows_the_ruleset_and_bad_input_is_one_line() {
    let out = Command::new(BIN)
        .args(["print", "--proxy-uid", "65533", "--app-port", "8080,9090"])
        .args(["--mesh-cidr", "10.0.0.0/8", "--skip-cidr", "10.0.0.1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tcp dport { 8080, 9090 } redirect to :15006"),
        "{text}"
    );
    assert!(text.contains("meta skuid 65533 return"), "{text}");

    let out = Command::new(BIN)
        .args([
            "apply",
            "--proxy-uid",
            "65533",
            "--mesh-cidr",
            "10.0.0.0/99",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ward-intercept: error: \"10.0.0.0/99\": the prefix length must be 0-32"
    );
    let out = Command::new(BIN)
        .args([
            "apply",
            "--proxy-uid",
            "1",
            "--mesh-cidr",
            "10.0.0.0/8",
            "--nft",
            "/nonexistent/nft",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/nft"));
}
