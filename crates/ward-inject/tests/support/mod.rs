//! What ward-inject's tests share: the repository, the shipped demo-inject manifests as one
//! stream, and the real binary run with its input on stdin.

#![allow(dead_code)] // each test file uses its part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped settings, deploy/inject/inject.yaml.
pub fn shipped_config() -> PathBuf {
    repo().join("deploy/inject/inject.yaml")
}

/// deploy/kubernetes/demo-inject's `names` (`backend`, ...) as one multi-document stream.
pub fn demo_inject(names: &[&str]) -> String {
    names
        .iter()
        .map(|f| {
            let path = repo().join(format!("deploy/kubernetes/demo-inject/{f}.yaml"));
            format!("---\n{}", std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

/// `ward-inject ARGS --config CONFIG` with `input` on stdin.
pub fn ward_inject(args: &[&str], config: &Path, input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward-inject"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
