//! The Workload API with the gRPC stacks apps actually use over a Unix socket, not only the
//! Rust `spiffe` crate: grpcio (gRPC C-core, under py-spiffe and the C++, Ruby and PHP
//! clients) calls all five methods, once with the `:authority` C-core sends by default (the
//! percent-encoded socket path) and once with the raw socket path grpc-java sends. Both are
//! authorities the HTTP/2 server would refuse; the sidecar serves them all the same.
//! (`make test` installs grpcio in target/venv-python: scripts/ensure-python-clients.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::workload::*;
use support::*;
use ward_e2e::TestCa;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the grpcio client against `socket`: its JSON answer, or what went wrong.
fn grpcio(socket: &Path, authority: Option<&str>) -> Result<serde_json::Value, String> {
    let python = root().join("target/venv-python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ensure-python-clients.sh (make test does)",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/grpc/workload_client.py"))
        .arg("--socket")
        .arg(socket)
        .arg("--proto")
        .arg(root().join("crates/ward-workload/proto/workload.proto"));
    if let Some(a) = authority {
        cmd.args(["--authority", a]);
    }
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{said}{}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_str(&said).map_err(|e| format!("{e}: {said}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_calls_every_method_whatever_authority_it_sends() {
    let test_ca = TestCa::new("example.org");
    let pki = Pki::new();
    let (ca, proxy, socket) = ca_and_sidecar(&test_ca, &pki).await;
    for authority in [None, Some(socket.to_str().unwrap())] {
        let s = socket.clone();
        let a = authority.map(str::to_owned);
        let got = tokio::task::spawn_blocking(move || grpcio(&s, a.as_deref()))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("authority {authority:?}: {e}"));
        assert_eq!(got["x509_spiffe_id"], FRONTEND, "{got}");
        assert!(got["x509_chain_bytes"].as_u64().unwrap() > 300, "{got}");
        assert!(got["x509_key_bytes"].as_u64().unwrap() > 0, "{got}");
        assert_eq!(
            got["x509_bundles"],
            serde_json::json!(["spiffe://example.org"])
        );
        assert_eq!(got["jwt_spiffe_id"], FRONTEND, "{got}");
        assert_eq!(
            got["jwt_bundles"],
            serde_json::json!(["spiffe://example.org"])
        );
        assert_eq!(got["validated_spiffe_id"], FRONTEND, "{got}");
        assert!(
            got["validated_claims"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "aud"),
            "{got}"
        );
    }
    for method in [
        "FetchX509SVID",
        "FetchX509Bundles",
        "FetchJWTSVID",
        "FetchJWTBundles",
        "ValidateJWTSVID",
    ] {
        let series =
            format!("ward_workload_api_calls_total{{method=\"{method}\",result=\"admitted\"}}");
        assert!(metric(&proxy, &series) >= 2.0, "{series}");
    }
    proxy.shutdown().await;
    ca.running.shutdown().await;
}
