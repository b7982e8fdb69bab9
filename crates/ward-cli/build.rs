//! Records the commit the binaries are built from, for `ward_build_info{commit}` and
//! `--version`: `WARD_COMMIT` when set (container builds have no `.git`), else
//! `git rev-parse --short=12 HEAD`, else `unknown`. Reruns only when HEAD moves, so only this
//! crate and the ward crates above it rebuild after a commit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WARD_COMMIT");
    let commit = std::env::var("WARD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WARD_COMMIT={}", commit.trim());
}

fn from_git() -> Option<String> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let git_dir = manifest
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|d| d.is_dir())?;
    watch(&git_dir);
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&manifest)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// HEAD, the branch it names, the branches' directory, and packed-refs (where a branch lives
/// after a clone or `git gc`).
fn watch(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    // The branches' directory too: after a fresh clone the branch lives in packed-refs, and
    // the first commit writes it as a new file there.
    let mut files = vec![
        head.clone(),
        git_dir.join("packed-refs"),
        git_dir.join("refs/heads"),
    ];
    if let Ok(text) = std::fs::read_to_string(&head) {
        if let Some(branch) = text.trim().strip_prefix("ref: ") {
            files.push(git_dir.join(branch));
        }
    }
    // A missing file would make cargo rerun this script on every build.
    for file in files.iter().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}
