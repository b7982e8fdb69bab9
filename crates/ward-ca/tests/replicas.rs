//! Several CA replicas on one real PostgreSQL database, all equal: a join token is spent once
//! whichever replicas race for it, a revocation made through one is served by all with the
//! same ETag and sequence, and a database outage makes issuance answer 503 (never an
//! unrecorded certificate) until the database returns, with no restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{csr, material, refused, Harness, ADMIN};
use ward_e2e::postgres::Postgres;

const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

/// A first replica (with the test CA) on a fresh database of `pg`, and `more` others.
async fn replicas(
    pg: &Postgres,
    db: &str,
    more: usize,
) -> (Harness, Vec<ward_ca::server::RunningCa>) {
    pg.create_database(db);
    let state = pg.state_yaml(db);
    let first = Harness::start_on(
        &state,
        "jwks_file: jwks.json",
        "limits: { enroll_per_ip_per_sec: 100000 }\nbundle_refresh_hint: 1s\n",
        tempfile::tempdir().unwrap(),
    )
    .await;
    let mut others = Vec::new();
    for _ in 0..more {
        others.push(first.replica().await);
    }
    (first, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_raced_over_three_replicas_is_spent_once() {
    let pg = Postgres::start();
    let (first, others) = replicas(&pg, "race", 2).await;
    let addrs: Vec<_> = std::iter::once(first.running.addr)
        .chain(others.iter().map(|r| r.addr))
        .collect();
    let token = first.token_in_state(FRONTEND, 600).await;
    let first = std::sync::Arc::new(first);
    let attempts: Vec<_> = (0..64)
        .map(|i| {
            let (h, token, addr) = (first.clone(), token.clone(), addrs[i % addrs.len()]);
            tokio::spawn(async move {
                let (_, pem) = csr();
                let body = json!({"csr": pem, "token": token}).to_string();
                let mut c = h.conn_to(addr, None).await;
                c.request("POST", "/v1/enroll", body.as_bytes())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for a in attempts {
        let resp = a.await.unwrap();
        match resp.status {
            200 => ok += 1,
            _ => refused(&resp, 401, "token_used"),
        }
    }
    assert_eq!(
        ok, 1,
        "64 enrollments with one token over 3 replicas: exactly one 200"
    );
    let recorded = first
        .running
        .service
        .state
        .certs(Some(FRONTEND))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "and exactly one recorded certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_through_one_replica_is_served_by_all_alike() {
    let pg = Postgres::start();
    let (first, others) = replicas(&pg, "revoke", 2).await;
    let token = first.token_in_state(FRONTEND, 600).await;
    let (resp, key) = first.enroll(&token).await;
    assert_eq!(resp.status, 200, "{}", resp.json());
    let serial = resp.json()["serial"].as_str().unwrap().to_owned();
    let admin = first.recorded(ADMIN);
    let mut c = first.conn_to(others[0].addr, Some(admin)).await;
    let body = json!({"serial": serial, "reason": "test"}).to_string();
    let revoked = c
        .request("POST", "/v1/revoke", body.as_bytes())
        .await
        .unwrap();
    assert_eq!(revoked.status, 200, "{}", revoked.json());

    let addrs: Vec<_> = std::iter::once(first.running.addr)
        .chain(others.iter().map(|r| r.addr))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let mut seen = Vec::new();
        for addr in &addrs {
            let mut c = first.conn_to(*addr, None).await;
            let resp = c.request("GET", "/v1/bundle", b"").await.unwrap();
            let doc = resp.json();
            let listed = doc["revocations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["serial"] == serial.as_str());
            let etag = resp.header("etag").unwrap_or_default().to_owned();
            seen.push((
                listed,
                etag,
                doc["spiffe_bundle"]["spiffe_sequence"].clone(),
            ));
        }
        if seen.iter().all(|s| s.0) || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        seen.iter().all(|s| s.0),
        "every replica lists the revocation: {seen:?}"
    );
    assert!(
        seen.windows(2)
            .all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2),
        "same content, same ETag and sequence on every replica: {seen:?}"
    );
    // The revoked certificate can renew at no replica.
    for addr in &addrs {
        let mut c = first.conn_to(*addr, Some(material(&resp, &key))).await;
        let (_, pem) = csr();
        let body = json!({"csr": pem}).to_string();
        let renew = c
            .request("POST", "/v1/renew", body.as_bytes())
            .await
            .unwrap();
        refused(&renew, 403, "revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_503_and_recovers_without_restart() {
    let pg = Postgres::start();
    let (first, _others) = replicas(&pg, "outage", 0).await;
    let token = first.token_in_state(FRONTEND, 600).await;
    for _ in 0..16 {
        // Open every pooled connection, so the restart breaks them all.
        first.running.service.state.token("warm").await.unwrap();
    }
    pg.kill();
    let (resp, _) = first.enroll(&token).await;
    refused(&resp, 503, "state_unavailable");
    let mut c = first.conn(None).await;
    let ready = c.request("GET", "/readyz", b"").await.unwrap();
    assert_eq!(ready.status, 503, "not ready while the database is down");

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = loop {
        let (resp, _) = first.enroll(&token).await;
        if resp.status != 503 || Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        resp.status,
        200,
        "the same replica issues again: {}",
        resp.json()
    );
    let serial = resp.json()["serial"].as_str().unwrap().to_owned();
    assert!(
        first
            .running
            .service
            .state
            .cert(&serial)
            .await
            .unwrap()
            .is_some(),
        "what was returned is recorded"
    );
    // Every pooled connection that broke with the restart is replaced, not reused: a run of
    // enrollments (two statements each, spread over the pool) all succeed.
    for i in 0..12 {
        let token = first.token_in_state(&format!("{FRONTEND}{i}"), 600).await;
        let (resp, _) = first.enroll(&token).await;
        assert_eq!(
            resp.status,
            200,
            "enrollment {i} after recovery: {}",
            resp.json()
        );
    }
    let mut c = first.conn(None).await;
    let ready = c.request("GET", "/readyz", b"").await.unwrap();
    assert_eq!(ready.status, 200);
}
