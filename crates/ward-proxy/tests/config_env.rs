//! `ward-proxy run|check --config-env VAR`: the config of an injected sidecar comes from its
//! pod spec, in an environment variable (ward-inject writes it there).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::process::Command;

use support::*;

/// An injected sidecar's config comes from its pod spec, in an environment variable: checked
/// the same, its errors naming `$VAR` and the line.
#[test]
fn the_config_may_come_from_an_environment_variable() {
    let pki = Pki::new();
    let policy = pki.file("policy.yaml", ALLOW_FRONTEND);
    let text = format!("trust_domain: example.org\nidentity:\n  files: {{ cert: a.pem, key: a.key, bundle: b.pem }}\npolicy: {}\ninbound:\n  - {{ name: api, transparent: true, listen: \"0.0.0.0:15006\" }}\n", policy.display());
    let check = |value: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ward-proxy"))
            .args(["check", "--config-env", "WARD_PROXY_CONFIG"])
            .env("WARD_PROXY_CONFIG", value)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = check(&text);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("ok: $WARD_PROXY_CONFIG "), "{out}");
    let (code, _, err) = check(&format!("{text}bogus: 1\n"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("$WARD_PROXY_CONFIG:7:1: unknown field `bogus`"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ward-proxy"))
        .args(["check", "--config-env", "WARD_NOT_SET_ANYWHERE"])
        .output()
        .unwrap();
    let (code, err) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("$WARD_NOT_SET_ANYWHERE: environment variable not found"),
        "{err}"
    );
}
