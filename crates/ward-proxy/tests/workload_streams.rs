//! The Workload API's streams under load and through a CA rotation: 200 streams each get
//! every renewal and release everything when their clients go; after `activate` the app's SVID
//! is re-issued under the new issuer on the open stream, and after `finish` a JWT-SVID of the
//! retired key is refused by `ValidateJWTSVID`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use spiffe::{JwtSvid, TrustDomain};
use support::ca::*;
use support::workload::*;
use support::*;
use ward_e2e::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_each_get_every_renewal_and_cost_nothing_once_gone() {
    let test_ca = TestCa::new("example.org");
    let ca = start_ca(&test_ca, CA_EXTRA).await;
    let pki = Pki::new();
    let socket: PathBuf = pki.path("workload.sock");
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, &[own_uid(&pki.path(""))]))
        .await
        .unwrap();
    let mut streams = Vec::new();
    for i in 0..200 {
        // A few clients (connections) carrying many streams each, as real apps would.
        let c = client(&socket).await;
        let s = c.stream_x509_svids().await.unwrap();
        streams.push((i, c, s));
    }
    let mut firsts = Vec::new();
    for (_, _, s) in &mut streams {
        firsts.push(serial(&s.next().await.unwrap().unwrap()));
    }
    assert_eq!(metric(&proxy, "ward_workload_api_streams "), 200.0);
    for ((_, _, s), first) in streams.iter_mut().zip(&firsts) {
        let next = tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("a stream missed the renewal")
            .unwrap()
            .unwrap();
        assert_ne!(&serial(&next), first);
    }
    drop(streams);
    eventually("every stream released", || {
        metric(&proxy, "ward_workload_api_streams ") == 0.0
    })
    .await;
    proxy.shutdown().await;
    ca.running.shutdown().await;
}

/// A CA rotation seen through the Workload API: after `activate` the app's SVID on the open
/// stream is re-issued under the new issuer; a JWT-SVID of the previous key validates until
/// `finish`, and is refused by `ValidateJWTSVID` (and gone from the JWT bundles) after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_reaches_the_app_and_retires_tokens_of_the_old_key() {
    let test_ca = TestCa::new("example.org");
    let extra = CA_EXTRA.replace("default: 12s", "default: 1h");
    let ca = start_ca(&test_ca, &extra).await;
    let pki = Pki::new();
    let socket = pki.path("workload.sock");
    let proxy = ward_proxy::start(config(&pki, &ca, &socket, &[own_uid(&pki.path(""))]))
        .await
        .unwrap();
    let client = client(&socket).await;
    let mut stream = client.stream_x509_svids().await.unwrap();
    let before = stream.next().await.unwrap().unwrap();
    let old = client.fetch_jwt_token(["rp"], None).await.unwrap();
    let old_kid = JwtSvid::parse_insecure(&old).unwrap().key_id().to_owned();

    let dir = test_ca.path();
    ward_ca::keys::dir::rotation::prepare(&dir, false, 0, Default::default()).unwrap();
    // Two bundle refreshes (1 s hint) before activation, as `activate` itself insists.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ward_ca::keys::dir::rotation::activate(&dir, ward_identity::unix_now(), 1, false).unwrap();
    let after = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let svid = stream.next().await.unwrap().unwrap();
            if svid.cert_chain()[1] != before.cert_chain()[1] {
                return svid;
            }
        }
    })
    .await
    .expect("the app's SVID was not re-issued under the new issuer");
    assert_eq!(after.spiffe_id().to_string(), FRONTEND);
    client
        .validate_jwt_token("rp", &old)
        .await
        .expect("a token of the previous key is good until finish");

    ward_ca::keys::dir::rotation::finish(&dir).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bundles = client.fetch_jwt_bundles().await.unwrap();
        let td = TrustDomain::new("example.org").unwrap();
        let gone = bundles
            .get(&td)
            .is_some_and(|b| b.find_jwt_authority(&old_kid).is_none());
        if gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retired key is still in the JWT bundle"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = client
        .validate_jwt_token("rp", &old)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no key"), "{err}");
    drop(stream);
    drop(client);
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
