//! `ward-ca seed`, the CA pod's init container: a CA made by `ward-ca init`, laid out the way
//! the kubelet mounts a Secret (each file a symlink into a `..data` directory, 0440), becomes
//! a CA directory the daemon accepts, with 0600 keys and every file `init` wrote (the JWT-SVID
//! key included); a second run, or a run after a rotation rewrote the directory, changes
//! nothing; an incomplete source or a directory holding something else is refused and leaves
//! no CA behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const WARD_CA: &str = env!("CARGO_BIN_EXE_ward-ca");

fn ward(args: &[&str]) -> Output {
    Command::new(WARD_CA).args(args).output().unwrap()
}

/// `ward-ca init --dir DIR --trust-domain example.org`.
fn init(dir: &Path) -> Output {
    ward(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--trust-domain",
        "example.org",
    ])
}

/// `ward-ca seed --from FROM --dir DIR`.
fn seed(from: &Path, dir: &Path) -> Output {
    ward(&[
        "seed",
        "--from",
        from.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ward-ca init` into `tmp/made`, then the files as a Secret volume: `..data/NAME` 0440 and
/// `NAME -> ..data/NAME`, like the kubelet's atomic writer.
fn secret_volume(tmp: &Path) -> std::path::PathBuf {
    let made = tmp.join("made");
    let out = init(&made);
    assert!(out.status.success(), "{}", text(&out));
    let mount = tmp.join("seed");
    fs::create_dir_all(mount.join("..data")).unwrap();
    for entry in fs::read_dir(&made).unwrap() {
        let name = entry.unwrap().file_name();
        let data = mount.join("..data").join(&name);
        fs::copy(made.join(&name), &data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o440)).unwrap();
        symlink(Path::new("..data").join(&name), mount.join(&name)).unwrap();
    }
    mount
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_mounted_secret_becomes_a_ca_directory_once() {
    let tmp = tempfile::tempdir().unwrap();
    let from = secret_volume(tmp.path());
    let dir = tmp.path().join("state/ca");
    fs::create_dir(tmp.path().join("state")).unwrap();

    let out = seed(&from, &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("seeded from") && text(&out).contains("trust domain example.org"),
        "{}",
        text(&out)
    );
    for name in [
        "root.pem",
        "root.key",
        "issuer.pem",
        "issuer.key",
        "jwt.key",
        "bundle.pem",
        "rotation.json",
    ] {
        let file = dir.join(name);
        assert!(
            fs::symlink_metadata(&file).unwrap().is_file(),
            "{name} is not a plain file"
        );
        assert_eq!(
            fs::read(&file).unwrap(),
            fs::read(tmp.path().join("made").join(name)).unwrap(),
            "{name}"
        );
        let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&file), want, "{name}");
    }
    assert_eq!(mode(&dir), 0o700);
    assert!(!tmp.path().join("state/ca.seed").exists());
    // The daemon's own check accepts it.
    let config = tmp.path().join("ca.yaml");
    fs::write(
        &config,
        format!(
            "trust_domain: example.org\nca_dir: {}\nlisten: \"127.0.0.1:0\"\nstate: {}\n",
            dir.display(),
            tmp.path().join("state/state.db").display()
        ),
    )
    .unwrap();
    let out = ward(&["check", "--config", config.to_str().unwrap(), "--connect"]);
    assert!(out.status.success(), "{}", text(&out));

    // Later starts leave the directory alone, whatever is in it now (a rotation's files).
    fs::write(dir.join("issuer.pem"), b"rotated").unwrap();
    let out = seed(&from, &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("present: nothing copied"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(dir.join("issuer.pem")).unwrap(), b"rotated");
}

#[test]
fn an_incomplete_source_or_a_foreign_directory_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let from = secret_volume(tmp.path());
    fs::remove_file(from.join("issuer.key")).unwrap();
    let dir = tmp.path().join("ca");
    let out = seed(&from, &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("issuer.key is missing"),
        "{}",
        text(&out)
    );
    assert!(!dir.exists());

    // A mismatched pair: another CA's issuer key.
    let other = tmp.path().join("other");
    let out = init(&other);
    assert!(out.status.success());
    fs::copy(other.join("issuer.key"), from.join("issuer.key")).unwrap();
    let out = seed(&from, &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!dir.exists(), "{}", text(&out));

    // A directory that holds something that is not a CA.
    fs::copy(tmp.path().join("made/issuer.key"), from.join("issuer.key")).unwrap();
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let out = seed(&from, &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to seed"), "{}", text(&out));
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"mine");
}
