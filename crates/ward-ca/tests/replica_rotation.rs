//! Rotation with replicas, with the real `ward-ca` binary and a real PostgreSQL: `init
//! --config` puts the CA in the database (sealed under a KEK file it creates), three `serve`
//! replicas sign with it, and `rotate prepare|activate|finish`, run once, moves all three:
//! each step returns only when every live replica serves it (a paused replica holds
//! `activate` until it resumes), and every replica then publishes the same bundle and signs
//! with the same issuer. A replica with another KEK refuses to start and says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use ward_e2e::kit::free_port;
use ward_e2e::postgres::Postgres;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

struct Replicas(Vec<(Child, SocketAddr)>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ward_ca(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// Config `name` in `dir` listening on `port`, with `kek` as its KEK file.
fn config(dir: &Path, pg: &Postgres, db: &str, name: &str, port: u16, kek: &Path) -> PathBuf {
    let state = pg
        .state_yaml(db)
        .replace(pg.kek_file().to_str().unwrap(), kek.to_str().unwrap());
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("trust_domain: example.org\nlisten: \"127.0.0.1:{port}\"\ndns_names: [localhost]\nbundle_refresh_hint: 2s\n{state}"),
    )
    .unwrap();
    path
}

/// The roots the database's CA publishes (what a client trusts).
async fn roots(cfg: &Path) -> ward_tls::BundleStore {
    ward_e2e::postgres::db_ca_roots(&ward_ca::config::CaConfig::load(cfg).unwrap()).await
}

async fn get(
    bundles: &ward_tls::BundleStore,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> ward_e2e::https::Response {
    let c = ward_e2e::https::connector(bundles.clone(), "spiffe://example.org/ward/ca", None);
    let mut conn = ward_e2e::https::Conn::open(&c, addr).await.unwrap();
    conn.request(method, path, body).await.unwrap()
}

/// Each replica's bundle: (ETag, issuers as "role:serial").
async fn bundles_of(trust: &ward_tls::BundleStore, r: &Replicas) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (_, addr) in &r.0 {
        let resp = get(trust, *addr, "GET", "/v1/bundle", b"").await;
        assert_eq!(resp.status, 200);
        let doc = resp.json();
        let issuers = doc["issuers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["role"].as_str().unwrap(),
                    i["serial"].as_str().unwrap()
                )
            })
            .collect();
        out.push((resp.header("etag").unwrap().to_owned(), issuers));
    }
    out
}

/// All replicas serve the same bundle; its issuers.
async fn same_bundle(trust: &ward_tls::BundleStore, r: &Replicas) -> Vec<String> {
    let all = bundles_of(trust, r).await;
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "replicas differ: {all:?}"
    );
    all[0].1.clone()
}

/// Enrolls FRONTEND at `addr` with a new token; the serial of the issuer that signed.
async fn enroll_issuer(
    dir: &Path,
    cfg: &Path,
    trust: &ward_tls::BundleStore,
    addr: SocketAddr,
) -> String {
    let out = ward_ca(
        dir,
        &[
            "token",
            "create",
            "--config",
            cfg.to_str().unwrap(),
            "--id",
            FRONTEND,
        ],
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap();
    let body = json!({"csr": csr, "token": token}).to_string();
    let resp = get(trust, addr, "POST", "/v1/enroll", body.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.json());
    let chain =
        ward_tls::pem::certs_from_pem("chain", resp.json()["chain"].as_str().unwrap().as_bytes())
            .unwrap();
    let (_, issuer) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    ward_identity::serial_hex(issuer.raw_serial())
}

fn serial_of(issuers: &[String], role: &str) -> String {
    issuers
        .iter()
        .find_map(|i| i.strip_prefix(&format!("{role}:")))
        .unwrap_or_else(|| panic!("no {role} issuer in {issuers:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rotation_moves_every_replica() {
    let pg = Postgres::start();
    let db = pg.create_database("rotation");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kek = dir.join("secret/kek");
    std::fs::create_dir(dir.join("secret")).unwrap();
    let admin_cfg = config(dir, &pg, &db, "ca.yaml", 1, &kek);
    let cfg = admin_cfg.to_str().unwrap();

    let said = ok(&ward_ca(dir, &["init", "--config", cfg]));
    assert!(
        said.contains("created CA for trust domain example.org"),
        "{said}"
    );
    let mode = std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the KEK it created is private");
    let again = ward_ca(dir, &["init", "--config", cfg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a CA"));

    let mut replicas = Replicas(Vec::new());
    for i in 0..3 {
        let port = free_port();
        let c = config(dir, &pg, &db, &format!("ca-{i}.yaml"), port, &kek);
        let child = Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", c.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        replicas
            .0
            .push((child, format!("127.0.0.1:{port}").parse().unwrap()));
    }
    let trust = roots(&admin_cfg).await;
    let anon = ward_e2e::https::connector(trust.clone(), "spiffe://example.org/ward/ca", None);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, addr) in &replicas.0 {
        while ward_e2e::https::Conn::open(&anon, *addr).await.is_err() {
            assert!(Instant::now() < deadline, "a replica did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let before = same_bundle(&trust, &replicas).await;
    let first = serial_of(&before, "signing");
    // A workload certificate of the first issuer, so `finish` has something to wait for.
    assert_eq!(
        enroll_issuer(dir, &admin_cfg, &trust, replicas.0[0].1).await,
        first
    );

    // prepare: returns once all three publish the next issuer.
    let said = ok(&ward_ca(dir, &["rotate", "prepare", "--config", cfg]));
    assert!(said.contains("all 3 live replica(s) serve it"), "{said}");
    let prepared = same_bundle(&trust, &replicas).await;
    assert_eq!(serial_of(&prepared, "signing"), first);
    let next = serial_of(&prepared, "next");

    // activate: too early at first (two refreshes of 2s), then it waits for a paused replica.
    let early = ward_ca(dir, &["rotate", "activate", "--config", cfg]);
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("wait"),
        "{early:?}"
    );
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let paused = replicas.0[2].0.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &paused])
        .status()
        .unwrap()
        .success());
    let activate = Command::new(BIN)
        .current_dir(dir)
        .args(["rotate", "activate", "--config", cfg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = Command::new(BIN)
        .current_dir(dir)
        .args(["rotate", "status", "--config", cfg])
        .output()
        .unwrap();
    let status = ok(&status);
    assert!(
        status.contains("replicas: 3 live") && status.contains("(behind)"),
        "{status}"
    );
    assert!(Command::new("kill")
        .args(["-CONT", &paused])
        .status()
        .unwrap()
        .success());
    let said = ok(&activate.wait_with_output().unwrap());
    assert!(said.contains("all 3 live replica(s) serve it"), "{said}");
    let active = same_bundle(&trust, &replicas).await;
    assert_eq!(serial_of(&active, "signing"), next);
    assert_eq!(serial_of(&active, "previous"), first);
    for (_, addr) in &replicas.0 {
        assert_eq!(
            enroll_issuer(dir, &admin_cfg, &trust, *addr).await,
            next,
            "every replica signs with the new issuer"
        );
    }

    // finish: refused while the first issuer's certificate lives, then forced.
    let early = ward_ca(dir, &["rotate", "finish", "--config", cfg]);
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("still valid"),
        "{early:?}"
    );
    let said = ok(&ward_ca(
        dir,
        &["rotate", "finish", "--force", "--config", cfg],
    ));
    assert!(said.contains("all 3 live replica(s) serve it"), "{said}");
    let finished = same_bundle(&trust, &replicas).await;
    assert_eq!(
        finished,
        vec![format!("signing:{next}")],
        "the previous issuer is retired everywhere"
    );

    // A replica given another KEK does not start, and says which key is wrong.
    let other = dir.join("secret/other-kek");
    std::fs::write(&other, [9u8; 32]).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = config(dir, &pg, &db, "wrong.yaml", free_port(), &other);
    let out = ward_ca(dir, &["serve", "--config", wrong.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("sealed under key-encryption key"),
        "{err}"
    );
}
