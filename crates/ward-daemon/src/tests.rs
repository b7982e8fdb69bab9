//! The accept loop over real loopback sockets: the caps (global, per client address, from
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3), slots given back when a connection ends, and the
//! drain (no new connections once draining; open ones finish within the grace, or are told
//! to close).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use super::*;

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closed `s` within a second.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_refuse_at_once_and_slots_come_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lifecycle = Lifecycle::default();
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let (lc, seen) = (lifecycle.clone(), refusals.clone());
    let server = tokio::spawn(async move {
        let gate = Gate::new(2).per_ip(1);
        accept_loop(
            listener,
            "test",
            &lc.clone(),
            &gate,
            |r, peer| seen.lock().unwrap().push((r, peer.ip())),
            move |mut sock, _, admission| {
                let lc = lc.clone();
                async move {
                    let _held = admission;
                    // Serve until the client hangs up or the daemon closes.
                    let mut b = [0u8; 1];
                    tokio::select! {
                        _ = sock.read(&mut b) => {}
                        () = lc.reached(Phase::Closing) => {}
                    }
                }
            },
        )
        .await;
    });
    let mut a = connect_from("127.0.0.1", addr).await;
    let mut again = connect_from("127.0.0.1", addr).await;
    assert!(
        closed(&mut again).await,
        "a second connection from one address was admitted"
    );
    let mut b = connect_from("127.0.0.2", addr).await;
    let mut third = connect_from("127.0.0.3", addr).await;
    assert!(
        closed(&mut third).await,
        "a third connection passed the global cap"
    );
    assert!(!closed(&mut a).await && !closed(&mut b).await);
    assert_eq!(
        *refusals.lock().unwrap(),
        vec![
            (Refusal::PerIpLimit, "127.0.0.1".parse::<IpAddr>().unwrap()),
            (Refusal::MaxConnections, "127.0.0.3".parse().unwrap()),
        ]
    );
    assert_eq!(lifecycle.active(), 2);
    // A connection that ends gives its slots back.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while lifecycle.active() != 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut a2 = connect_from("127.0.0.1", addr).await;
    assert!(!closed(&mut a2).await, "the slot did not come back");

    // Drain: the listener stops, connections still open are told to close after the grace.
    let started = Instant::now();
    lifecycle.shutdown(Duration::from_millis(300)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(lifecycle.active(), 0);
    assert!(closed(&mut b).await && closed(&mut a2).await);
    server.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after the drain"
    );
}

#[tokio::test]
async fn a_drain_with_nothing_open_returns_at_once() {
    let lifecycle = Lifecycle::default();
    let started = Instant::now();
    lifecycle.shutdown(Duration::from_secs(30)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(lifecycle.phase(), Phase::Closing);
}
