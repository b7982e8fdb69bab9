//! The deployment files agree with the workspace, and the docs name only paths that exist.
//! Each Containerfile copies one workspace binary onto `scratch` (no base image, no RUN) and
//! runs it as the manifests' non-root user; the Kubernetes manifests use exactly those images,
//! at the workspace version. (`make kube-test`, in tests/kube.rs, builds and runs them.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key = "value"` from the workspace Cargo.toml's [workspace.package].
fn workspace_value(key: &str) -> String {
    let toml = read(&root().join("Cargo.toml"));
    toml.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("{key} not in Cargo.toml"))
}

/// The binaries a package directory builds: `src/main.rs` under the package's name, plus
/// every `[[bin]] name`.
fn binaries(package_dir: &Path) -> (String, Vec<String>) {
    let manifest = read(&package_dir.join("Cargo.toml"));
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let mut bins: Vec<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| {
            section
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .map(|n| n.trim_matches('"').to_owned())
        })
        .collect();
    if package_dir.join("src/main.rs").exists() {
        bins.push(name.clone());
    }
    (name, bins)
}

#[test]
fn containerfiles_copy_one_workspace_binary_onto_scratch_as_non_root() {
    let dir = root().join("deploy/docker");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let what = path.display().to_string();
        let Some(image) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".Containerfile"))
        else {
            panic!("{what}: deploy/docker holds only NAME.Containerfile");
        };
        let text = read(&path);
        let instructions: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.starts_with(' '))
            .collect();
        let froms: Vec<&&str> = instructions
            .iter()
            .filter(|l| l.starts_with("FROM"))
            .collect();
        assert_eq!(
            froms,
            [&"FROM scratch"],
            "{what}: no base image, nothing pulled"
        );
        assert!(
            !instructions.iter().any(|l| l.starts_with("RUN")),
            "{what}: nothing runs at build time (there is no shell)"
        );
        assert!(instructions.contains(&"COPY rootfs/ /"), "{what}");
        let entrypoint = instructions
            .iter()
            .find_map(|l| l.strip_prefix("ENTRYPOINT "))
            .unwrap_or_else(|| panic!("{what}: no ENTRYPOINT"));
        assert_eq!(
            entrypoint,
            format!("[\"/usr/local/bin/{image}\"]"),
            "{what}"
        );
        let user = instructions
            .iter()
            .filter_map(|l| l.strip_prefix("USER "))
            .next_back()
            .unwrap_or_else(|| panic!("{what}: no USER"));
        assert_eq!(user, "65532:65532", "{what}: the manifests' runAsUser");
        let (name, bins) = binaries(&root().join("crates").join(image));
        assert_eq!(name, image, "{what}: crates/{image} is package {name}");
        assert!(
            bins.iter().any(|b| b == image),
            "{what}: {image} builds no binary {image}"
        );
        seen.push(image.to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        ["ward-ca", "ward-demo-app", "ward-intercept", "ward-proxy"]
    );
    let script = read(&root().join("scripts/build-images.sh"));
    assert!(
        script.contains(&format!(
            "${{IMAGES:-{}}}",
            ["ward-ca", "ward-proxy", "ward-demo-app", "ward-intercept"].join(" ")
        )),
        "make image builds every Containerfile"
    );

    // Every ward image a manifest runs is one of these, at the workspace version.
    let version = workspace_value("version");
    let mut manifests = Vec::new();
    let mut stack = vec![root().join("deploy/kubernetes")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                manifests.push(path);
            }
        }
    }
    let mut used = 0;
    for path in manifests {
        for line in read(&path).lines() {
            if let Some(image) = line.trim().strip_prefix("image: ghcr.io/ward/") {
                assert!(
                    seen.iter().any(|name| image == format!("{name}:{version}")),
                    "{}: ghcr.io/ward/{image} is not built here",
                    path.display()
                );
                used += 1;
            }
        }
    }
    assert!(
        used >= 6,
        "the CA, its seed, both demo sidecars and apps run ward images"
    );
}

/// The Workload API socket path operations.md gives VM operators lies in the directory the
/// systemd unit creates for the instance (`RuntimeDirectory=`, under `/run`), the only place
/// `ProtectSystem=strict` leaves the sidecar to create it, with a mode the app's uid can
/// traverse. (`systemd-analyze verify` checks the unit's syntax in scripts/validate-deploy.sh;
/// no systemd runs here to start it.)
#[test]
fn the_systemd_unit_gives_the_documented_workload_api_socket_a_directory() {
    let unit = read(&root().join("deploy/systemd/ward-proxy@.service"));
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("ward-proxy@.service has no {key}="))
            .trim()
            .to_owned()
    };
    assert_eq!(value("ProtectSystem"), "strict");
    let mode = u32::from_str_radix(&value("RuntimeDirectoryMode"), 8).unwrap();
    assert_eq!(mode & 0o001, 0o001, "others cannot reach the socket");
    let ops = read(&root().join("docs/operations.md"));
    // The documented socket of instance `orders` (ward-proxy@orders).
    let socket = ops
        .split("workload_api: { socket:")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .map(|s| s.trim().to_owned())
        .expect("operations.md gives VM operators a Workload API socket path");
    let dir = format!(
        "/run/{}/",
        value("RuntimeDirectory").replace("%i", "orders")
    );
    assert!(
        socket.starts_with(&dir) && !socket[dir.len()..].contains('/'),
        "{socket} is not directly in {dir}, the unit's RuntimeDirectory"
    );
}

/// Every path of this repository that README.md, docs/ and deploy/ name (`docs/ca.md`,
/// `deploy/kubernetes/ca-ha`, `crates/.../tests/x.rs::test`) exists, so a moved file or a
/// renamed test cannot leave an operator or a reviewer looking for something that is not
/// there. `deploy/NAME` after `kubectl` is a Deployment, not a path.
#[test]
fn every_repository_path_the_docs_name_exists() {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut sources = vec![root.join("README.md")];
    files(&root.join("docs"), &mut sources);
    files(&root.join("deploy"), &mut sources);
    let prefixes = ["crates/", "docs/", "deploy/", "scripts/", "tests/"];
    let mut missing = Vec::new();
    for source in &sources {
        let Ok(text) = std::fs::read_to_string(source) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let bytes = line.as_bytes();
            for prefix in prefixes {
                let mut from = 0;
                while let Some(at) = line[from..].find(prefix) {
                    let start = from + at;
                    from = start + prefix.len();
                    let before = start.checked_sub(1).map(|i| bytes[i]);
                    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b"_/.-".contains(&b)) {
                        continue;
                    }
                    let len = line[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || "_./@%-".contains(c)))
                        .unwrap_or(line.len() - start);
                    let path = line[start..start + len].trim_end_matches(['.', ',', ':', ';']);
                    let name = &path[prefix.len()..];
                    let kubectl_resource = prefix == "deploy/"
                        && line.contains("kubectl")
                        && !name.contains('/')
                        && !name.contains('.');
                    if !kubectl_resource && !root.join(path).exists() {
                        missing.push(format!(
                            "{}:{}: {path}",
                            source.strip_prefix(&root).unwrap_or(source).display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths named that do not exist:\n{}",
        missing.join("\n")
    );
}
