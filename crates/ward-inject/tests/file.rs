//! `ward-inject file` on the shipped deploy/kubernetes/demo-inject: the opted-in Deployments
//! get the interception init container and the native sidecar, whose generated config the
//! real `ward-proxy check` accepts; a second run changes nothing; a template that opts out,
//! or a namespace that does not opt in, is left as it was; a bad annotation stops the run
//! with the document, the annotation and what is wrong, and prints nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{demo_inject, repo, shipped_config, ward_inject};

fn demo() -> String {
    demo_inject(&["namespace", "backend", "frontend"])
}

fn inject(input: &str) -> Output {
    inject_with(input, &shipped_config())
}

fn inject_with(input: &str, config: &Path) -> Output {
    ward_inject(&["file", "-"], config, input)
}

fn docs(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

fn deployment<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
        .unwrap()
}

#[test]
fn opted_in_deployments_get_the_sidecar_once() {
    let out = inject(&demo());
    let injected = docs(&out);
    let spec = &deployment(&injected, "backend")["spec"]["template"]["spec"];
    let inits = spec["initContainers"].as_array().unwrap();
    assert_eq!(inits[0]["name"], "ward-intercept");
    assert_eq!(
        inits[0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN"])
    );
    assert_eq!(inits[1]["name"], "ward-proxy");
    assert_eq!(inits[1]["restartPolicy"], "Always");
    assert_eq!(inits[1]["securityContext"]["runAsUser"], 65533);
    let args: Vec<&str> = inits[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--app-port", "8080:15100"]),
        "{args:?}"
    );
    // The app container is exactly as written.
    let written: Vec<Value> = serde_saphyr::from_multiple(&demo()).unwrap();
    assert_eq!(
        spec["containers"],
        deployment(&written, "backend")["spec"]["template"]["spec"]["containers"]
    );

    // The generated config passes the real ward-proxy's check (with the policy it mounts).
    let tmp = tempfile::tempdir().unwrap();
    proxy_checks(inits[1]["env"][0]["value"].as_str().unwrap(), tmp.path());
    // With an IPv6 mesh range too: dual-stack inbound listeners, an outbound one on ::1.
    let dual = tmp.path().join("inject6.yaml");
    let text = std::fs::read_to_string(repo().join("deploy/inject/inject.yaml")).unwrap();
    let text = text.replace(
        "mesh_cidrs: [10.0.0.0/8]",
        "mesh_cidrs: [10.0.0.0/8, \"fd00::/8\"]",
    );
    std::fs::write(&dual, text).unwrap();
    let injected6 = docs(&inject_with(&demo(), &dual));
    let proxy6 =
        &deployment(&injected6, "backend")["spec"]["template"]["spec"]["initContainers"][1];
    let config6 = proxy6["env"][0]["value"].as_str().unwrap();
    assert!(
        config6.contains("listen: \"[::]:15100\"") && config6.contains("listen: \"[::1]:15001\""),
        "{config6}"
    );
    proxy_checks(config6, tmp.path());

    // Injecting the injected output changes nothing.
    let again = inject(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(again.stdout, out.stdout);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has ward-proxy, unchanged"));
}

/// `ward-proxy check` accepts a generated sidecar config (its policy moved under `dir`).
fn proxy_checks(config: &str, dir: &Path) {
    std::fs::write(dir.join("policy.yaml"), "rules: []\n").unwrap();
    let config = config.replace(
        "/etc/ward/policy/policy.yaml",
        dir.join("policy.yaml").to_str().unwrap(),
    );
    let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/ward-proxy");
    // `cargo test --workspace` builds it (ward-proxy has integration tests of its own).
    assert!(
        proxy.exists(),
        "{} is missing: cargo build -p ward-proxy",
        proxy.display()
    );
    let check = Command::new(&proxy)
        .args(["check", "--config-env", "WARD_PROXY_CONFIG"])
        .env("WARD_PROXY_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{config}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn opting_out_and_bad_annotations() {
    let out_of_it = demo().replace(
        "        ward.dev/policy: backend-policy\n",
        "        ward.dev/policy: backend-policy\n        ward.dev/inject: disabled\n",
    );
    let injected = docs(&inject(&out_of_it));
    assert!(
        deployment(&injected, "backend")["spec"]["template"]["spec"]["initContainers"].is_null()
    );
    assert!(
        !deployment(&injected, "frontend")["spec"]["template"]["spec"]["initContainers"].is_null()
    );
    let no_namespace = demo().replace("    ward.dev/inject: enabled\n", "");
    let injected = docs(&inject(&no_namespace));
    assert!(
        deployment(&injected, "frontend")["spec"]["template"]["spec"]["initContainers"].is_null()
    );

    for (from, to, want) in [
        (
            "\"8080/http\"",
            "\"8080/grpc\"",
            "annotation ward.dev/inbound-ports: \"grpc\": the protocol is tcp or http",
        ),
        (
            "\"8080/http\"",
            "\"80800\"",
            "annotation ward.dev/inbound-ports: \"80800\" is not a port",
        ),
        (
            "        ward.dev/policy: backend-policy\n",
            "",
            "annotation ward.dev/inbound-ports: needs ward.dev/policy",
        ),
        (
            "ward.dev/policy:",
            "ward.dev/polcy:",
            "annotation ward.dev/polcy: unknown",
        ),
    ] {
        let out = inject(&demo().replace(from, to));
        assert_eq!(out.status.code(), Some(1), "{to}");
        assert!(out.stdout.is_empty(), "printed something for {to}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Deployment ward-inject-demo/backend: ") && err.contains(want),
            "{err}"
        );
    }
}
