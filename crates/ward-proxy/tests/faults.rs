//! Faults on the far side of a sidecar: an upstream that dies mid-stream must not leave the
//! local app's connection hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_dies_mid_stream_closes_the_apps_connection() {
    let pki = Pki::new();
    // The upstream: a real BACKEND identity that echoes, in a task we can kill.
    let (upstream, server) = echo_upstream(&pki, pki.ca.issue(BACKEND)).await;
    let frontend = frontend_proxy(&pki, upstream, BACKEND).await;
    let mut app = TcpStream::connect(addr_of(&frontend.outbound, "backend"))
        .await
        .unwrap();
    assert_eq!(round_trip(&mut app, b"before").await.unwrap(), b"before");

    // Kill it: the task and its socket go away without a TLS close_notify.
    server.abort();
    let _ = server.await;
    let mut buf = [0u8; 16];
    let ended = tokio::time::timeout(Duration::from_secs(5), app.read(&mut buf)).await;
    assert!(
        matches!(ended, Ok(Ok(0) | Err(_))),
        "the app's connection was left open: {ended:?}"
    );
    eventually("the close counted", || {
        metric(
            &frontend,
            "ward_connections_active{listener=\"backend\",direction=\"outbound\"}",
        ) == 0.0
    })
    .await;
    frontend.shutdown().await;
}
