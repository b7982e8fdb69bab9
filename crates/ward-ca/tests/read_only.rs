//! A state directory that goes read-only under the running CA, as ext4 does after an I/O
//! error (`errors=remount-ro`). The real daemon runs in its own mount namespace with its state
//! on a loop-mounted ext4 image; after some enrollments the test has the file system aborted
//! (`mount -o remount,abort`), which is what the kernel does on such an error. From then on
//! every enrollment and renewal is refused with 503 `state_unavailable`, and the message
//! names the state directory and "Read-only file system" (SQLite alone says only "disk I/O
//! error"). A restart on the read-only file system refuses to start, saying the same. Once
//! the image is mounted again (the disk repaired), `ward-ca certs list` holds every serial a
//! client received, and nothing else.
//!
//! Loop devices and ext4 mounts need real root. CI runs as root, so there it always runs; as
//! any other user it prints "skipped: needs root" and checks nothing, like the other fault
//! tests that need root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod mounted;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use mounted::{MountedCa, Script};

const MOUNT: &str = "truncate -s 32M disk.img
mkfs.ext4 -q -F disk.img
mount -o loop disk.img state";

const DURING: &str = "while [ ! -e go-ro ]; do sleep 0.05; done
mount -o remount,abort state
touch ro-done";

const AFTER: &str = "timeout 20 \"$BIN\" serve --config ca.yaml 2> restart.log && echo 0 > restart.rc || echo $? > restart.rc
umount state
mount -o loop disk.img state";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_directory_gone_read_only_stops_issuance_and_says_why() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        // Said on the test's output, so a run as a user shows what it did not check.
        println!("skipped: needs root (loop-mounts an ext4 image; CI runs as root)");
        return;
    }
    let mut ca = MountedCa::start(Script {
        unshare: "-m",
        mount: MOUNT,
        during: DURING,
        after: AFTER,
    })
    .await;

    let mut issued = Vec::new();
    let mut first = None;
    for i in 0..10 {
        let r = ca.enroll(i).await;
        assert_eq!(r.status, 200, "{}", r.json());
        issued.push(r.json()["serial"].as_str().unwrap().to_owned());
        first.get_or_insert(r);
    }

    std::fs::write(ca.path().join("go-ro"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ca.path().join("ro-done").exists() {
        assert!(Instant::now() < deadline, "the file system was not aborted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let says_why = |status: u16, body: &serde_json::Value| {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "state_unavailable", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("Read-only file system") && message.contains("state"),
            "does not say why: {message}"
        );
    };
    for i in 10..30 {
        let r = ca.enroll(i).await;
        says_why(r.status, &r.json());
    }
    let r = ca.renew(first.as_ref().unwrap()).await;
    says_why(r.status, &r.json());

    let listed = ca.stop();
    let restart = ca.read("restart.log");
    let restart_rc = ca.read("restart.rc");
    assert_ne!(
        restart_rc.trim(),
        "0",
        "restarted on a read-only disk: {restart}"
    );
    assert_ne!(
        restart_rc.trim(),
        "124",
        "a restart on a read-only disk served: {restart}"
    );
    assert!(
        restart.contains("Read-only file system") && restart.contains("state directory"),
        "the refused restart does not say why: {restart}"
    );
    for serial in &issued {
        assert!(
            listed.contains(serial.as_str()),
            "serial {serial} was returned but not recorded:\n{listed}"
        );
    }
    // Besides the CA's own serving certificate (attestor `ca`).
    let recorded = listed
        .lines()
        .filter(|l| l.contains(" kubernetes "))
        .count();
    assert_eq!(
        recorded,
        issued.len(),
        "recorded what was never returned:\n{listed}"
    );
}
