//! The real `ward-proxy` binary's output for scripts and shells: `policy test --output json`
//! (the fields docs/proxy.md promises, the same exit status as text: 0 let through, 1
//! refused, 2 undecided), completion scripts, and `--version` with the commit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::process::{Command, Output};

use serde_json::Value;

const WARD_PROXY: &str = env!("CARGO_BIN_EXE_ward-proxy");
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(WARD_PROXY)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn verdict(dir: &std::path::Path, policy: &str, from: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["policy", "test", "--policy", policy, "--from", from];
    args.extend(["--listener", "api", "--output", "json"]);
    args.extend(extra);
    let out = run(dir, &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (out.status.code().unwrap(), value)
}

#[test]
fn policy_test_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("p.yaml"),
        format!("rules:\n  - name: web-to-api\n    from: [\"{FRONTEND}\"]\n    to: {{ listeners: [api] }}\n  - name: reads\n    from: [\"spiffe://example.org/ns/ops/*\"]\n    to: {{ listeners: [api], methods: [GET], paths: [\"/v1/*\"] }}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("audit.yaml"),
        format!("mode: audit\nrules:\n  - name: web-to-api\n    from: [\"{FRONTEND}\"]\n    to: {{ listeners: [api] }}\n"),
    )
    .unwrap();

    let (code, v) = verdict(dir, "p.yaml", FRONTEND, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        v,
        serde_json::json!({
            "decision": "allow", "rule": "web-to-api", "mode": "enforce", "let_through": true,
            "listener": "api", "from": FRONTEND, "method": null, "path": null,
            "per_request_rules": true
        })
    );
    let intruder = "spiffe://example.org/ns/evil/sa/x";
    let (code, v) = verdict(dir, "p.yaml", intruder, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("deny"), Some("default-deny"))
    );
    assert_eq!(v["let_through"], false);

    let ops = "spiffe://example.org/ns/ops/sa/cron";
    let (code, v) = verdict(
        dir,
        "p.yaml",
        ops,
        &["--method", "GET", "--path", "/v1/../v1/x"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        (v["rule"].as_str(), v["path"].as_str()),
        (Some("reads"), Some("/v1/../v1/x"))
    );
    assert_eq!(v["per_request_rules"], false);
    let (code, v) = verdict(
        dir,
        "p.yaml",
        ops,
        &["--method", "DELETE", "--path", "/v1/x"],
    );
    assert_eq!((code, v["decision"].as_str()), (1, Some("deny")));

    let (code, v) = verdict(dir, "audit.yaml", intruder, &[]);
    assert_eq!(code, 0, "audit mode lets it through");
    assert_eq!(
        (
            v["decision"].as_str(),
            v["mode"].as_str(),
            v["let_through"].as_bool()
        ),
        (Some("deny"), Some("audit"), Some(true))
    );

    // Undecided: exit 2, an error line, no verdict document.
    let (code, v) = verdict(dir, "missing.yaml", FRONTEND, &[]);
    assert_eq!((code, v), (2, Value::Null));
}

#[test]
fn completions_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ok = |args: &[&str]| {
        let out = run(dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let bash = ok(&["completions", "bash"]);
    assert!(bash.contains("complete -F") && bash.contains("policy"));
    let syntax = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash rejects the script");
    // Bash completes past the first word.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ward-proxy"));
    let offered = ward_e2e::kit::bash_completions(bin, &["ward-proxy", "policy", ""]);
    assert!(offered.iter().any(|o| o == "test"), "{offered:?}");
    let offered = ward_e2e::kit::bash_completions(bin, &["ward-proxy", "policy", "test", "--li"]);
    assert_eq!(offered, ["--listener"]);
    assert!(ok(&["completions", "zsh"]).starts_with("#compdef ward-proxy"));
    assert!(ok(&["completions", "fish"]).contains("complete -c ward-proxy"));
    let version = ok(&["--version"]);
    assert!(
        version.starts_with(&format!(
            "ward-proxy {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    let help = ok(&["policy", "test", "--help"]);
    assert!(
        help.contains("Example:") && help.contains("2 when"),
        "{help}"
    );
}
