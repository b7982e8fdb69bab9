//! The images `make image` builds, as podman runs them (`make kube-test`, part of
//! `make test`): each holds only its binary, the libraries it links and three files in /etc,
//! has no shell, runs as 65532, carries its OCI labels, answers `--version`, and knows the
//! subcommand every container of deploy/kubernetes that uses it runs (the manifests set no
//! `command:`, so the image's entrypoint is what runs).
//!
//! Ignored by plain `cargo test`: it needs the images (`make kube-test` builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ward_e2e::kube_play;
use ward_e2e::podman;

fn tag() -> String {
    std::env::var("WARD_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every image: only its binary, the libraries it links and three files in /etc (no shell,
/// nothing else); runs as 65532; its entrypoint is the binary, which every container of
/// the manifests that uses the image relies on (no `command:`, a first argument the binary
/// knows); the OCI labels say where it came from.
#[test]
#[ignore = "needs podman and the images of `make image`: run by `make kube-test`"]
fn the_images_hold_one_binary_and_run_as_the_manifests_expect() {
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dir in ["ca", "ca-ha", "demo"] {
        for doc in kube_play::read_dirs(&[repo().join("deploy/kubernetes").join(dir)]).unwrap() {
            for list in ["containers", "initContainers"] {
                for pointer in [
                    format!("/spec/template/spec/{list}"),
                    format!("/spec/{list}"),
                ] {
                    for c in doc
                        .pointer(&pointer)
                        .and_then(|v| v.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let image = c["image"].as_str().unwrap_or_default();
                        let Some(name) = image
                            .strip_prefix("ghcr.io/ward/")
                            .and_then(|r| r.split(':').next())
                        else {
                            continue;
                        };
                        assert!(
                            c.get("command").is_none(),
                            "{dir}: {} sets command",
                            c["name"]
                        );
                        let first = c["args"][0].as_str().unwrap_or_default().to_owned();
                        uses.entry(name.to_owned()).or_default().insert(first);
                    }
                }
            }
        }
    }
    assert_eq!(
        uses.keys().collect::<Vec<_>>(),
        ["ward-ca", "ward-demo-app", "ward-proxy"]
    );
    // ward-intercept runs only in injected pods (ward-inject writes them): no manifest names it.
    for name in ["ward-ca", "ward-demo-app", "ward-intercept", "ward-proxy"] {
        let firsts = uses.get(name).cloned().unwrap_or_default();
        let image = format!("localhost/{name}:{}", tag());
        let config = podman::ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Labels}}",
            &image,
        ]);
        let mut parts = config.trim().splitn(3, '|');
        assert_eq!(parts.next(), Some("65532:65532"), "{image}");
        assert_eq!(
            parts.next().unwrap(),
            format!("[\"/usr/local/bin/{name}\"]"),
            "{image}"
        );
        let labels: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
        for key in ["source", "version", "created", "title"] {
            let value = labels[format!("org.opencontainers.image.{key}")].as_str();
            assert!(
                value.is_some_and(|v| !v.is_empty()),
                "{image}: no {key} label"
            );
        }
        let built_from = labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap();
        assert_eq!(built_from.len(), 40, "{image}: revision {built_from}");
        if built_from != revision {
            eprintln!("note: {image} was built from {built_from}, the checkout is at {revision}");
        }

        let version = podman::ok(&["run", "--rm", &image, "--version"]);
        assert!(
            version.starts_with(&format!("{name} 0.1.0")),
            "{image}: {version}"
        );
        for first in &firsts {
            let out = podman::run(&["run", "--rm", &image, first, "--help"]);
            assert!(
                out.status.success(),
                "{image} does not know `{first}`, which a manifest runs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let shell = podman::run(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            "true",
        ]);
        assert!(!shell.status.success(), "{image} has a shell");

        let container = format!("wardimg{}-{name}", std::process::id());
        podman::ok(&["create", "--name", &container, &image]);
        let tar = podman::run(&["export", &container]);
        podman::ok(&["rm", &container]);
        let listing = std::process::Command::new("tar")
            .arg("-t")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&tar.stdout)?;
                child.wait_with_output()
            })
            .unwrap();
        let files: Vec<String> = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter(|l| !l.ends_with('/'))
            .map(String::from)
            .collect();
        let binary = format!("usr/local/bin/{name}");
        assert!(files.contains(&binary), "{image}: {files:?}");
        for file in &files {
            let allowed = *file == binary
                || (name == "ward-intercept" && file == "usr/sbin/nft")
                || (name == "ward-proxy" && file == "etc/ward/deny-all.yaml")
                || ["etc/passwd", "etc/group", "etc/nsswitch.conf"].contains(&file.as_str())
                || (file.starts_with("lib") && file.contains(".so"));
            assert!(allowed, "{image} holds {file}");
        }
    }
}
