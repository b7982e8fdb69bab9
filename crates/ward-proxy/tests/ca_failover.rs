//! A sidecar configured with several CA replicas (two ward-ca daemons on one real PostgreSQL
//! database) renews through whichever answers; with none answering it keeps serving on the
//! SVID it has and says so in `/ready` and in a metric, and it renews as soon as one is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::ca::{ca_config_urls, start_ca_on};
use support::{metric, metric_or_zero, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_e2e::kit::eventually;
use ward_e2e::postgres::Postgres;
use ward_e2e::TestCa;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

fn renewals(p: &ward_proxy::RunningProxy) -> f64 {
    metric_or_zero(
        p,
        "ward_reloads_total{kind=\"identity\",result=\"success\"}",
    )
}

/// GET `path` on the proxy's admin port: status line and body.
async fn admin_get(p: &ward_proxy::RunningProxy, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(p.admin).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sidecar_fails_over_between_ca_replicas_and_rides_out_an_outage() {
    let pg = Postgres::start();
    let db = pg.create_database("failover");
    let test_ca = TestCa::new("example.org");
    let state = pg.state_yaml(&db);
    let a = start_ca_on(&test_ca, &state, "").await;
    let b = start_ca_on(&test_ca, &state, "").await;
    let (url_a, url_b) = (a.url(), b.url());
    let b_port = b.running.addr.port();
    let pki = Pki::new();
    let token = a.token_in_state(FRONTEND).await;
    let frontend = ward_proxy::start(ca_config_urls(
        &pki,
        "frontend",
        &[&url_a, &url_b],
        &a.bundle(),
        &token,
        "",
    ))
    .await
    .unwrap();
    assert!(metric(&frontend, "ward_identity_expiry_timestamp_seconds") > 0.0);

    // Replica A goes away: the forced renewal goes to B.
    a.running.shutdown().await;
    let before = renewals(&frontend);
    frontend.reload();
    eventually("renewed through replica B", || renewals(&frontend) > before).await;
    assert_eq!(
        metric(&frontend, "ward_ca_unreachable_since_timestamp_seconds"),
        0.0,
        "a replica answered"
    );
    assert!(admin_get(&frontend, "/ready")
        .await
        .contains("\r\n\r\nready\n"));

    // Both gone: the sidecar keeps its SVID, stays ready, and says why it is degraded.
    b.running.shutdown().await;
    frontend.reload();
    eventually("the outage is seen", || {
        metric(&frontend, "ward_ca_unreachable_since_timestamp_seconds") > 0.0
    })
    .await;
    let ready = admin_get(&frontend, "/ready").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains("ready (degraded): no CA has answered"),
        "{ready}"
    );

    // A replica is back (B's address): the next renewal goes through and the state clears.
    let text = std::fs::read_to_string(b.dir.path().join("ca.yaml"))
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{b_port}"));
    let config = ward_ca::config::CaConfig::parse("ca.yaml", &text, b.dir.path()).unwrap();
    let back = ward_ca::server::start(config).await.unwrap();
    let before = renewals(&frontend);
    frontend.reload();
    eventually("renewed once a replica is back", || {
        renewals(&frontend) > before
    })
    .await;
    eventually("the outage is over", || {
        metric(&frontend, "ward_ca_unreachable_since_timestamp_seconds") == 0.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(admin_get(&frontend, "/ready")
        .await
        .contains("\r\n\r\nready\n"));
    back.shutdown().await;
    frontend.shutdown().await;
}
