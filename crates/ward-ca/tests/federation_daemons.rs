//! Federation between two real `ward-ca serve` processes on loopback, set up the way an
//! operator does it: each prints its bundle (`ward-ca federation bundle`), the other takes it
//! as `bundle_file`, and each then follows the other's bundle endpoint. Each publishes the
//! other's bundle to its sidecars in `/v1/bundle`; `federation list` shows it; when one CA
//! goes away the other keeps the last good bundle; a restarted CA keeps it from its state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use ward_e2e::kit::free_port;
use ward_e2e::TestCa;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ward_ca(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA of `td` in `dir` (its CA directory from `ca`), API on `api`, endpoint on `own`,
/// federating with `peer` whose endpoint is on `peer_port`.
fn config(dir: &Path, ca: &TestCa, td: &str, api: u16, own: u16, peer: &str, peer_port: u16) {
    std::fs::write(
        dir.join("ca.yaml"),
        format!(
            "trust_domain: {td}\nca_dir: {}\nlisten: \"127.0.0.1:{api}\"\nstate: state.db\ndns_names: [localhost]\nbundle_refresh_hint: 1s\n\
             federation:\n  bundle_endpoint: {{ listen: \"127.0.0.1:{own}\", profile: https_spiffe }}\n\
             \x20 federates_with:\n    - {{ trust_domain: {peer}, url: \"https://localhost:{peer_port}/bundle\", profile: https_spiffe, endpoint_spiffe_id: \"spiffe://{peer}/ward/ca\", bundle_file: peer.json }}\n",
            ca.path().display()
        ),
    )
    .unwrap();
}

fn serve(dir: &Path) -> Daemon {
    Daemon(
        Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", "ca.yaml"])
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("ca.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    )
}

/// `/v1/bundle` of the CA at `addr` (trusting `ca`'s roots), once it answers.
async fn bundle_doc(ca: &TestCa, td: &str, addr: SocketAddr) -> serde_json::Value {
    let c = ward_e2e::https::connector(ca.bundles(), &format!("spiffe://{td}/ward/ca"), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut conn) = ward_e2e::https::Conn::open(&c, addr).await {
            if let Ok(resp) = conn.request("GET", "/v1/bundle", b"").await {
                return resp.json();
            }
        }
        assert!(Instant::now() < deadline, "{td}'s CA did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn federated_sequence(doc: &serde_json::Value, td: &str) -> Option<u64> {
    doc["federated"]
        .as_array()?
        .iter()
        .find(|f| f["trust_domain"] == td)
        .and_then(|f| f["spiffe_sequence"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_federate_by_their_bundle_endpoints_and_keep_the_last_good_bundle() {
    let (ta, tb) = (TestCa::new("a.example"), TestCa::new("b.example"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (api_a, api_b, ep_a, ep_b) = (free_port(), free_port(), free_port(), free_port());
    config(da.path(), &ta, "a.example", api_a, ep_a, "b.example", ep_b);
    config(db.path(), &tb, "b.example", api_b, ep_b, "a.example", ep_a);
    // The out-of-band exchange of first bundles.
    let a_json = stdout(&ward_ca(
        da.path(),
        &["federation", "bundle", "--config", "ca.yaml"],
    ));
    let b_json = stdout(&ward_ca(
        db.path(),
        &["federation", "bundle", "--config", "ca.yaml"],
    ));
    std::fs::write(da.path().join("peer.json"), &b_json).unwrap();
    std::fs::write(db.path().join("peer.json"), &a_json).unwrap();

    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    let mut a = serve(da.path());
    let b = serve(db.path());
    // Each CA fetches the other's endpoint: the sequence moves past the file's 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc_a = bundle_doc(&ta, "a.example", addr(api_a)).await;
        let doc_b = bundle_doc(&tb, "b.example", addr(api_b)).await;
        if federated_sequence(&doc_a, "b.example").unwrap_or(0) > 0
            && federated_sequence(&doc_b, "a.example").unwrap_or(0) > 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CAs never fetched each other's bundles: {doc_a}\n{doc_b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = stdout(&ward_ca(
        da.path(),
        &["federation", "list", "--config", "ca.yaml"],
    ));
    let row = listed
        .lines()
        .find(|l| l.starts_with("b.example"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.contains(&format!("localhost:{ep_b}")) && row.contains("in_force"),
        "{listed}"
    );
    let shown = stdout(&ward_ca(
        da.path(),
        &[
            "federation",
            "show",
            "--config",
            "ca.yaml",
            "--trust-domain",
            "b.example",
        ],
    ));
    assert!(serde_json::from_str::<serde_json::Value>(&shown).unwrap()["keys"].is_array());

    // b.example's CA goes away: a.example keeps serving its last good bundle.
    drop(b);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let doc_a = bundle_doc(&ta, "a.example", addr(api_a)).await;
    assert!(
        federated_sequence(&doc_a, "b.example").unwrap_or(0) > 0,
        "{doc_a}"
    );

    // a.example's CA restarts without the file: the bundle comes back from its state.
    let _ = a.0.kill();
    let _ = a.0.wait();
    std::fs::remove_file(da.path().join("peer.json")).unwrap();
    a = serve(da.path());
    let doc_a = bundle_doc(&ta, "a.example", addr(api_a)).await;
    assert!(
        federated_sequence(&doc_a, "b.example").unwrap_or(0) > 0,
        "the foreign bundle was lost: {doc_a}"
    );
    drop(a);
    for dir in [da.path(), db.path()] {
        let options = ward_e2e::kit::debug_options_in_logs(dir);
        assert!(options.is_empty(), "{options:#?}");
    }
}
