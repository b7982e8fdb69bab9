//! Reserved identities (the CA's own ID and the configured admin IDs) are never issued by an
//! attestor: no join token can be created for them, a token stored for one before (or behind
//! the CLI's back) does not enroll, a Kubernetes `id_template` that renders one is refused,
//! and the template must use both claims, each a DNS label.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::*;

const CA_ID: &str = "spiffe://example.org/ward/ca";

#[tokio::test]
async fn no_join_token_enrolls_a_reserved_id() {
    let h = Harness::start("").await;
    let config = h.dir.path().join("ca.yaml");
    let config = config.to_str().unwrap();
    for id in [CA_ID, ADMIN] {
        let (code, out) = ward(
            h.dir.path(),
            &["token", "create", "--config", config, "--id", id],
        );
        assert_eq!(code, 1, "{id}: {out}");
        assert!(out.contains("reserved"), "{id}: {out}");
        // A token stored without the CLI's check still gets nothing.
        let (resp, _) = h.enroll(&h.token(id, 600)).await;
        refused(&resp, 403, "reserved_id");
    }
    assert_eq!(
        h.metric_or_zero("ward_ca_issuances_total{attestor=\"join_token\"}"),
        0.0
    );
}

/// Enrolls with a Kubernetes token for `ns`/`sa`.
async fn kube_enroll(h: &Harness, ns: &str, sa: &str) -> ward_e2e::https::Response {
    let (_, csr_pem) = csr();
    h.post(
        "/v1/enroll",
        &json!({"csr": csr_pem, "token": h.kube_token(ns, sa)}),
    )
    .await
}

#[tokio::test]
async fn a_kubernetes_template_cannot_render_a_reserved_id() {
    // A template that lets the namespace and service account choose the whole path.
    let template = "jwks_file: jwks.json, id_template: \"spiffe://{trust_domain}/{namespace}/{service_account}\"";
    let h = Harness::start_with(template, "", tempfile::tempdir().unwrap()).await;
    for (ns, sa) in [("ward", "ca"), ("ward", "admin")] {
        refused(&kube_enroll(&h, ns, sa).await, 403, "reserved_id");
    }
    // Claims that are not DNS labels never reach the template.
    for (ns, sa) in [
        ("Web", "frontend"),
        ("web", "front.end"),
        ("web", "-x"),
        ("a".repeat(64).as_str(), "x"),
    ] {
        refused(&kube_enroll(&h, ns, sa).await, 400, "invalid_id");
    }
    let ok = kube_enroll(&h, "web", "frontend").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["spiffe_id"], "spiffe://example.org/web/frontend");
}

#[test]
fn a_template_must_use_both_claims() {
    let dir = tempfile::tempdir().unwrap();
    for (template, problem) in [
        (
            "spiffe://{trust_domain}/ns/{namespace}",
            "{service_account}",
        ),
        (
            "spiffe://{trust_domain}/sa/{service_account}",
            "{namespace}",
        ),
        ("spiffe://{trust_domain}/ward/ca", "{namespace}"),
    ] {
        let text = format!(
            "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:0\"\nstate: state.db\n\
             attestors:\n  kubernetes: {{ issuer: \"{ISSUER}\", audience: {AUDIENCE}, jwks_file: jwks.json, id_template: \"{template}\" }}\n"
        );
        let err = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ca.yaml:6:") && err.contains(problem),
            "{template}: {err}"
        );
    }
}
