//! Rotation of the JWT-SVID keys, seen by a relying party through discovery: a token of the
//! previous key verifies until `finish`, then no longer; moving to RS256 is one rotation; and
//! `ward-ca rotate finish` waits until every token the previous key signed has expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jsonwebtoken::{decode_header, Algorithm};
use serde_json::{json, Value};
use support::jwt::*;
use support::{ward, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_verifies_until_finish_and_then_no_longer() {
    let h = Harness::start(CONFIG).await;
    let oidc = h.running.oidc_addr.unwrap();
    let me = h.recorded(FRONTEND);
    let old = jwt(&h, Some(copy(&me)), json!({"audience": ["rp"]}))
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = h.ca.path();
    ward_ca::keys::dir::rotation::prepare(&dir, false, 0, Default::default()).unwrap();
    ward_ca::keys::dir::rotation::activate(&dir, 1000, 1, false).unwrap();
    // The daemon picks the directory up within a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let new = loop {
        let t = jwt(&h, Some(copy(&me)), json!({"audience": ["rp"]}))
            .await
            .json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        if decode_header(&t).unwrap().kid != decode_header(&old).unwrap().kid {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never signed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    verify(oidc, &new, "rp").await.unwrap();
    verify(oidc, &old, "rp")
        .await
        .expect("the previous key still verifies");
    ward_ca::keys::dir::rotation::finish(&dir).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while verify(oidc, &old, "rp").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the retired key is still published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    verify(oidc, &new, "rp").await.unwrap();
}

/// Moving to RS256 (for relying parties that accept only RSA) is one rotation: `prepare`
/// makes an RSA key and publishes it beside the EC one, `activate` signs RS256 with it, and
/// `finish` retires the EC key; discovery names the algorithms in use throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_rs256_is_one_rotation() {
    let h = Harness::start(&CONFIG.replace("max_ttl: 10m", "max_ttl: 10m, algorithm: RS256")).await;
    let oidc = h.running.oidc_addr.unwrap();
    let me = h.recorded(FRONTEND);
    let algs = |doc: &Value| doc["id_token_signing_alg_values_supported"].clone();
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(
        algs(&doc),
        json!(["ES256"]),
        "the CA was made with an EC key"
    );
    let dir = h.ca.path();
    ward_ca::keys::dir::rotation::prepare(
        &dir,
        false,
        0,
        ward_ca::authority::jwt_svid::JwtAlgorithm::Rs256,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !bundle_keys(&h).await.iter().any(|k| k["kty"] == "RSA") {
        assert!(
            std::time::Instant::now() < deadline,
            "the RSA key was never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(algs(&doc), json!(["ES256", "RS256"]));
    ward_ca::keys::dir::rotation::activate(&dir, 1000, 1, false).unwrap();
    let token = loop {
        let t = jwt(&h, Some(copy(&me)), json!({"audience": ["entra"]}))
            .await
            .json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        if decode_header(&t).unwrap().alg == Algorithm::RS256 {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "RS256 never signed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let claims = verify(oidc, &token, "entra").await.unwrap();
    assert_eq!(claims["sub"], FRONTEND);
    ward_ca::keys::dir::rotation::finish(&dir).unwrap();
    while bundle_keys(&h)
        .await
        .iter()
        .any(|k| k["kty"] == "EC" && k["use"] == "jwt-svid")
    {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "the EC key stayed published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, _, doc) = get(oidc, "/.well-known/openid-configuration").await;
    assert_eq!(algs(&doc), json!(["RS256"]));
    verify(oidc, &token, "entra").await.unwrap();
}

/// `rotate finish` (the operator command) waits until every JWT-SVID the previous key signed
/// has expired: activation + `jwt_svid.max_ttl` + 150 s of clock skew. `status` says until
/// when; `--force` retires it anyway, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_waits_for_the_previous_keys_tokens() {
    let h = Harness::start(CONFIG).await;
    let dir = h.dir.path();
    // (--force: no sidecar here needs two bundle refreshes to learn the next issuer.)
    for step in [
        &["rotate", "prepare", "--config", "ca.yaml"][..],
        &["rotate", "activate", "--config", "ca.yaml", "--force"],
    ] {
        let (code, out) = ward(dir, step);
        assert_eq!(code, 0, "{step:?}: {out}");
    }
    let (code, out) = ward(dir, &["rotate", "finish", "--config", "ca.yaml"]);
    assert_eq!(
        code, 1,
        "finish must wait for the previous key's tokens: {out}"
    );
    assert!(
        out.contains("JWT-SVIDs signed by the previous generation's key may be valid until"),
        "{out}"
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ward-ca"))
        .current_dir(dir)
        .args(["rotate", "status", "--config", "ca.yaml"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout).to_string()
        + &String::from_utf8_lossy(&status.stderr);
    assert!(
        said.contains("JWT-SVIDs of the previous key may be valid until"),
        "{said}"
    );
    let (code, out) = ward(dir, &["rotate", "finish", "--config", "ca.yaml", "--force"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stop verifying now (--force)"), "{out}");
}
