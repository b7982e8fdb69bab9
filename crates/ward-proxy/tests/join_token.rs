//! A sidecar spends its single-use join token only when it can run: a listener port that is
//! taken stops it before it enrolls, and the token is still unused. A token the CA refuses
//! for good (already used) is said once, with the fix, retried slowly, and a new token
//! written to the file is picked up without a restart (the real binary and its log). A used
//! token cannot be revoked as if that cut its workload off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::ca::*;
use support::*;
use ward_e2e::kit::free_port;
use ward_e2e::TestCa;

const BIN: &str = env!("CARGO_BIN_EXE_ward-proxy");

/// Kills the sidecar when the test ends, also when it fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token_state(ca: &Ca) -> String {
    let listing = ca.cli(&["token", "list", "--output", "json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&listing).unwrap();
    v["tokens"][0]["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_does_not_spend_the_join_token() {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, "").await;
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listeners = format!(
        "inbound:\n  - {{ name: api, listen: \"127.0.0.1:{port}\", forward: \"127.0.0.1:9\" }}\n"
    );
    let token = ca.token(FRONTEND);
    let config = ca_config(
        &pki,
        "frontend",
        &ca.url(),
        &ca.bundle(),
        &token,
        &listeners,
    );
    let err = ward_proxy::start(config.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&port.to_string()), "{err}");
    assert_eq!(
        token_state(&ca),
        "unused",
        "the token was spent by a sidecar that could not run"
    );
    // With the port free, the same token enrolls.
    drop(taken);
    let proxy = ward_proxy::start(config).await.unwrap();
    assert!(metric(&proxy, "ward_identity_expiry_timestamp_seconds") > 0.0);
    assert_eq!(token_state(&ca), "used");
    // Revoking the used token would change nothing: refused, naming what does.
    let listing = ca.cli(&["token", "list", "--output", "json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let token_id = v["tokens"][0]["token_id"].as_str().unwrap().to_owned();
    let err = ca
        .cli(&["token", "revoke", "--token-id", &token_id])
        .unwrap_err();
    assert!(
        err.contains("already used") && err.contains(&format!("--id {FRONTEND}")),
        "{err}"
    );
    assert_eq!(token_state(&ca), "used");
    proxy.shutdown().await;
    ca.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_said_once_with_the_fix_and_a_new_one_is_picked_up() {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, "").await;
    let pki = Pki::new();
    let token = ca.token(FRONTEND);
    // Another sidecar spends it first.
    let first = ward_proxy::start(ca_config(
        &pki,
        "first",
        &ca.url(),
        &ca.bundle(),
        &token,
        "",
    ))
    .await
    .unwrap();
    let admin = free_port();
    let token_file = pki.file("second.token", &token);
    let policy = pki.file("second-policy.yaml", "rules: []\n");
    let config = pki.file(
        "second.yaml",
        &format!(
            "trust_domain: example.org\nidentity:\n  ca: {{ url: \"{}\", bundle: {}, token_file: {} }}\n\
             policy: {}\nadmin: \"127.0.0.1:{admin}\"\nreload_interval: 1s\n",
            ca.url(),
            ca.bundle().display(),
            token_file.display(),
            policy.display()
        ),
    );
    let mut child = Running(
        Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.0.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let said = |what: &str| log.lock().unwrap().matches(what).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while said("token_used") == 0 {
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several reload ticks later it has said so once, and named the fix.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let text = log.lock().unwrap().clone();
    assert_eq!(said("cannot enroll"), 1, "{text}");
    assert!(text.contains("it was already used"), "{text}");
    assert!(text.contains("ward-ca token create"), "{text}");
    assert!(text.contains(token_file.to_str().unwrap()), "{text}");
    assert!(!text.contains("keeping the previous identity"), "{text}");
    // A new token in the file is picked up without a restart.
    std::fs::write(&token_file, ca.token(FRONTEND)).unwrap();
    let url = format!("http://127.0.0.1:{admin}/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
            .output()
            .unwrap();
        if out.stdout == b"200" {
            break;
        }
        assert!(Instant::now() < deadline, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child);
    first.shutdown().await;
    ca.running.shutdown().await;
}
