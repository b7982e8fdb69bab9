//! A full disk under the CA: the real daemon runs in its own mount namespace (`unshare -rm`)
//! with its state directory on a 384 KiB tmpfs, and enrolls until the database cannot grow.
//! From then on every enrollment is refused with 503 `state_unavailable` saying the disk is
//! full, and no certificate is handed out that the database does not hold: afterwards
//! `ward-ca certs list` (run in the same namespace, on the same full tmpfs) lists every
//! serial a client received.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod mounted;
mod support;

use mounted::{MountedCa, Script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_issuance_and_loses_nothing_returned() {
    let mut ca = MountedCa::start(Script {
        unshare: "-rm",
        mount: "mount -t tmpfs -o size=384k tmpfs state",
        during: "",
        after: "",
    })
    .await;

    let (mut issued, mut refused) = (Vec::new(), Vec::new());
    for i in 0..20_000 {
        let r = ca.enroll(i).await;
        match r.status {
            200 => {
                assert!(
                    refused.is_empty(),
                    "issued again after refusing: {:?}",
                    r.json()
                );
                issued.push(r.json()["serial"].as_str().unwrap().to_owned());
            }
            _ => {
                refused.push((r.status, r.json()));
                if refused.len() == 20 {
                    break;
                }
            }
        }
    }
    assert!(
        issued.len() > 10,
        "the tmpfs filled before anything was issued"
    );
    assert_eq!(
        refused.len(),
        20,
        "the disk never filled ({} issued)",
        issued.len()
    );
    for (status, body) in &refused {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"], "state_unavailable", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("full"), "does not say why: {message}");
    }

    let listed = ca.stop();
    for serial in &issued {
        assert!(
            listed.contains(serial.as_str()),
            "serial {serial} was returned but not recorded"
        );
    }
}
