//! Faults of a replicated CA, with the real `ward-ca serve` binary and a real PostgreSQL: a
//! replica SIGKILLed in the middle of a burst of enrollments loses no certificate it returned,
//! and a database restart under traffic costs only `503 state_unavailable` answers during the
//! outage, never another 5xx, a duplicate serial or an unrecorded certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use ward_ca::authority::records::Snapshot;
use ward_ca::state::{unix_now, Store};
use ward_e2e::kit::free_port;
use ward_e2e::postgres::Postgres;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");
const FRONTEND: &str = "spiffe://example.org/ns/web/sa/frontend";

struct Cluster {
    _tmp: tempfile::TempDir,
    replicas: Vec<(Child, SocketAddr)>,
    bundles: ward_tls::BundleStore,
    secrets: Arc<Vec<String>>,
    csr: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.replicas {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `n` replicas of one CA on database `db` of `pg`, and `tokens` join tokens for FRONTEND.
async fn cluster(pg: &Postgres, db: &str, n: usize, tokens: usize) -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ward_ca::keys::dir::init(&dir.join("ca"), &"example.org".parse().unwrap(), false).unwrap();
    pg.create_database(db);
    let state = pg.state_yaml(db);
    let head = "trust_domain: example.org\ndns_names: [localhost]\nlimits: { enroll_per_ip_per_sec: 100000 }\n";
    let parsed = ward_ca::config::CaConfig::parse(
        "ca.yaml",
        &format!("{head}listen: \"127.0.0.1:0\"\n{state}"),
        dir,
    )
    .unwrap();
    // The replicas sign with the CA kept in the database.
    ward_ca::keys::db::import_dir(&parsed, &dir.join("ca"))
        .await
        .unwrap();
    let store = Store::open(&parsed.state).await.unwrap();
    let mut all = Snapshot::default();
    let mut secrets = Vec::new();
    let now = unix_now();
    for _ in 0..tokens {
        let t = ward_ca::authority::tokens::generate().unwrap();
        all.tokens.push(t.record(FRONTEND, now, 600));
        secrets.push(t.secret);
    }
    store.import(all).await.unwrap();
    let mut replicas = Vec::new();
    for i in 0..n {
        let port = free_port();
        let config = dir.join(format!("ca-{i}.yaml"));
        std::fs::write(
            &config,
            format!("{head}listen: \"127.0.0.1:{port}\"\n{state}"),
        )
        .unwrap();
        let child = Command::new(BIN)
            .current_dir(dir)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        replicas.push((child, format!("127.0.0.1:{port}").parse().unwrap()));
    }
    let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
    let bundles = ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
    );
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap();
    let c = Cluster {
        _tmp: tmp,
        replicas,
        bundles,
        secrets: Arc::new(secrets),
        csr,
    };
    let anon = c.connector();
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, addr) in &c.replicas {
        while ward_e2e::https::Conn::open(&anon, *addr).await.is_err() {
            assert!(Instant::now() < deadline, "a replica did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c
}

impl Cluster {
    fn connector(&self) -> tokio_rustls::TlsConnector {
        ward_e2e::https::connector(self.bundles.clone(), "spiffe://example.org/ward/ca", None)
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    serials: Vec<String>,
    /// (when, status, code) of every non-200 answer.
    refusals: Vec<(Instant, u16, String)>,
}

/// `workers` clients spread over the replicas, each enrolling with the next token until the
/// tokens run out, `stop` is set, or its replica stops answering (then it ends).
fn burst(
    c: &Cluster,
    workers: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next = Arc::new(AtomicUsize::new(0));
    (0..workers)
        .map(|w| {
            let addr = c.replicas[w % c.replicas.len()].1;
            let (connector, secrets, csr) = (c.connector(), c.secrets.clone(), c.csr.clone());
            let (next, stop, seen) = (next.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let mut conn = None;
                while !stop.load(Ordering::SeqCst) {
                    if conn.is_none() {
                        conn = ward_e2e::https::Conn::open(&connector, addr).await.ok();
                    }
                    let Some(open) = conn.as_mut() else { return };
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(token) = secrets.get(i) else { return };
                    let body = json!({"csr": csr, "token": token}).to_string();
                    match open.request("POST", "/v1/enroll", body.as_bytes()).await {
                        Ok(r) if r.status == 200 => seen
                            .lock()
                            .unwrap()
                            .serials
                            .push(r.json()["serial"].as_str().unwrap().to_owned()),
                        Ok(r) => {
                            let code = r.json()["error"].as_str().unwrap_or("").to_owned();
                            seen.lock()
                                .unwrap()
                                .refusals
                                .push((Instant::now(), r.status, code));
                        }
                        Err(_) => conn = None, // reconnect; a dead replica ends the worker
                    }
                }
            })
        })
        .collect()
}

/// Every returned serial is recorded, once, and every used token paid for one certificate.
fn assert_recorded(pg: &Postgres, db: &str, serials: &[String]) {
    let recorded: std::collections::HashSet<String> = pg
        .psql_in(db, "SELECT serial FROM certs")
        .lines()
        .map(str::to_owned)
        .collect();
    for s in serials {
        assert!(
            recorded.contains(s),
            "certificate {s} was returned but not recorded"
        );
    }
    let distinct: std::collections::HashSet<&String> = serials.iter().collect();
    assert_eq!(distinct.len(), serials.len(), "a serial was returned twice");
    assert_eq!(
        pg.psql_in(
            db,
            "SELECT count(*) FROM join_tokens WHERE used_at IS NOT NULL"
        ),
        pg.psql_in(
            db,
            "SELECT count(*) FROM certs WHERE attestor = 'join_token'"
        ),
        "every used token paid for exactly one certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_a_burst_loses_nothing_returned() {
    let pg = Postgres::start();
    let mut c = cluster(&pg, "kill", 2, 600).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers = burst(&c, 24, Arc::new(AtomicBool::new(false)), seen.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().serials.len() < 100 {
        assert!(Instant::now() < deadline, "burst never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    c.replicas[0].0.kill().unwrap(); // SIGKILL
    let _ = c.replicas[0].0.wait();
    let at_kill = seen.lock().unwrap().serials.len();
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(seen.refusals.is_empty(), "refusals: {:?}", seen.refusals);
    assert!(
        seen.serials.len() > at_kill + 50,
        "the surviving replica went on issuing ({} at the kill, {} in all)",
        at_kill,
        seen.serials.len()
    );
    assert_recorded(&pg, "kill", &seen.serials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_traffic_costs_only_503s_during_the_outage() {
    let pg = Postgres::start();
    let c = cluster(&pg, "restart", 2, 20_000).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers = burst(&c, 8, stop.clone(), seen.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let down = Instant::now();
    pg.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.restart();
    let up = Instant::now();
    let before = seen.lock().unwrap().serials.len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().serials.len() < before + 100 {
        assert!(
            Instant::now() < deadline,
            "issuance did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.refusals.is_empty(), "the outage was not seen at all");
    for (at, status, code) in &seen.refusals {
        assert_eq!(
            (*status, code.as_str()),
            (503, "state_unavailable"),
            "only state_unavailable during an outage"
        );
        assert!(
            *at >= down && *at <= resumed,
            "a 503 {}ms after issuance resumed (outage {}ms)",
            at.duration_since(resumed).as_millis(),
            up.duration_since(down).as_millis()
        );
    }
    assert_recorded(&pg, "restart", &seen.serials);
}
