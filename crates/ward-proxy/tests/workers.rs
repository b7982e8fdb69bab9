//! Connection workers: `workers:` is checked at its line; connections are dealt to the
//! workers in turn and served on their threads (each worker's echo goes through, with every
//! worker in use); and the workers' threads end with the proxy, so no connection outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_proxy::Config;

/// The threads of this process named `ward-conn-*` (the workers of every proxy it runs).
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ward-conn-"))
        .count()
}

#[test]
fn workers_is_checked_at_its_line() {
    let pki = Pki::new();
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let policy = pki.file("policy.yaml", ALLOW_FRONTEND);
    let text = |workers: &str| {
        format!(
            "trust_domain: example.org\n\
             identity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
             policy: {}\n\
             inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"127.0.0.1:1\" }}\n\
             {workers}",
            cert.display(),
            key.display(),
            pki.bundle().display(),
            policy.display(),
        )
    };
    for bad in ["workers: 0\n", "workers: 257\n"] {
        let path = pki.file("bad.yaml", &text(bad));
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.yaml:7:"), "{err}");
        assert!(err.contains("is not between 1 and 256"), "{err}");
    }
    let path = pki.file("bad.yaml", &text("workers: two\n"));
    assert!(Config::load(&path).is_err());
    let path = pki.file("ok.yaml", &text("workers: 3\n"));
    assert_eq!(Config::load(&path).unwrap().workers, 3);
    let path = pki.file("ok.yaml", &text(""));
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(Config::load(&path).unwrap().workers, cpus);
}

// The only test here that starts proxies, so the thread count is this proxy's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_served_on_every_worker_and_end_with_the_proxy() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let extra = "workers: 3\nlimits: { shutdown_grace: 1s }\n";
    let config = inbound_config(&pki, &cert, &key, app.addr, ALLOW_FRONTEND, extra);
    let back = ward_proxy::start(config).await.unwrap();
    threads_become(3, "one thread per worker").await;
    let front = frontend_proxy(&pki, addr_of(&back.inbound, "api"), BACKEND).await;
    threads_become(3 + default_workers(), "the frontend's own workers").await;

    // Six connections held open at once, dealt in turn to the backend's workers: every one
    // is relayed.
    let mut open = Vec::new();
    for i in 0..6u8 {
        let mut sock = TcpStream::connect(addr_of(&front.outbound, "backend"))
            .await
            .unwrap();
        let msg = [b'a' + i; 16];
        sock.write_all(&msg).await.unwrap();
        let mut got = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut got))
            .await
            .expect("echo within 10 s")
            .unwrap();
        assert_eq!(got, msg);
        open.push(sock);
    }
    assert_eq!(app.accepted(), 6);

    // Shutting the backend down ends its workers' threads (grace passes: the connections
    // are still open), and with them the connections they served.
    back.shutdown().await;
    threads_become(default_workers(), "the backend's worker threads end").await;
    for mut sock in open {
        assert!(closed_within(&mut sock, Duration::from_secs(10)).await);
    }
    front.shutdown().await;
}

/// Waits up to 10 s for `n` worker threads (a thread names itself once it runs).
async fn threads_become(n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker_threads() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} worker threads, not {n}",
            worker_threads()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().unwrap().get()
}
