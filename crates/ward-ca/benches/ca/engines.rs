//! End-to-end `/v1/enroll` and `/v1/renew` rates of the real `ward-ca serve` binary on each
//! state engine: SQLite (one node), PostgreSQL with one replica, and PostgreSQL with two
//! replicas (the clients split between them). Every configuration gets a fresh state and a
//! fresh daemon in every round, and the rounds interleave the configurations, so a noisy
//! neighbour hits all alike; medians are reported. The PostgreSQL server is a real one started
//! for the run (`fsync` and `synchronous_commit` on: an enrollment is durable before its 200),
//! and the database round trips per enrollment are read from the server's own counters.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use ward_ca::authority::records::Snapshot;
use ward_ca::state::{unix_now, Store};
use ward_e2e::postgres::Postgres;

use super::{load, median, BIN};

/// Join tokens per configuration and round: more than the fastest enroll run spends.
const TOKENS: usize = 50_000;

/// One configuration's figures over the rounds.
#[derive(Debug, Default)]
pub struct Figures {
    /// What was measured.
    pub name: &'static str,
    /// Enrollments per second, one per round.
    pub enroll: Vec<f64>,
    /// Renewals per second, one per round.
    pub renew: Vec<f64>,
    /// Non-200 answers over all rounds.
    pub errors: usize,
    /// Database transactions per enrollment (PostgreSQL), one per round.
    pub round_trips: Vec<f64>,
    /// JWT-SVIDs per second through `/v1/jwt`, one per round.
    pub jwt: Vec<f64>,
}

impl Figures {
    /// (median enroll/s, median renew/s, median round trips or None).
    pub fn medians(&self) -> (f64, f64, Option<f64>) {
        let rt = (!self.round_trips.is_empty()).then(|| median(self.round_trips.clone()));
        (median(self.enroll.clone()), median(self.renew.clone()), rt)
    }
}

struct Replicas {
    children: Vec<Child>,
    addrs: Vec<SocketAddr>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_replicas(dir: &Path, tag: &str, state: &str, n: usize) -> Replicas {
    // SQLite signs from the CA directory; replicas from the CA stored in the database.
    let keys = if state.contains("postgres:") {
        ""
    } else {
        "ca_dir: ca\n"
    };
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..n {
        let port = ward_e2e::kit::free_port();
        let config = dir.join(format!("ca-{tag}-{i}.yaml"));
        std::fs::write(
            &config,
            format!("trust_domain: example.org\n{keys}listen: \"127.0.0.1:{port}\"\n{state}limits: {{ enroll_per_ip_per_sec: 1000000, renew_per_id_per_minute: 100000000, jwt_per_id_per_sec: 100000000 }}\nttl: {{ min: 10s, default: 12s, max: 1h }}\njwt_svid: {{}}\n"),
        )
        .unwrap();
        children.push(
            Command::new(BIN)
                .current_dir(dir)
                .args(["serve", "--config", config.to_str().unwrap()])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        addrs.push(format!("127.0.0.1:{port}").parse().unwrap());
    }
    Replicas { children, addrs }
}

/// Fresh tokens in `store`, and the enroll bodies that spend them.
async fn tokens(store: &Store, csr: &str) -> Vec<String> {
    let now = unix_now();
    let mut all = Snapshot::default();
    let mut bodies = Vec::with_capacity(TOKENS);
    for _ in 0..TOKENS {
        let t = ward_ca::authority::tokens::generate().unwrap();
        all.tokens
            .push(t.record("spiffe://example.org/ns/bench/sa/app", now, 3600));
        bodies.push(json!({"csr": csr, "token": t.secret}).to_string());
    }
    store.import(all).await.unwrap();
    bodies
}

/// Committed transactions in `db` so far (each statement ward sends outside a transaction is
/// one), after the server has flushed its counters.
fn transactions(pg: &Postgres, db: &str) -> f64 {
    std::thread::sleep(Duration::from_millis(1500));
    pg.psql(&format!(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"
    ))
    .parse()
    .unwrap_or(0.0)
}

/// Enrolls once with `body` (a join token and the CSR of `key`): the client certificate.
async fn enroll_one(
    c: &mut ward_e2e::https::Conn,
    body: &str,
    key: &rcgen::KeyPair,
) -> ward_e2e::Material {
    let first = c
        .request("POST", "/v1/enroll", body.as_bytes())
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{}", first.json());
    let chain =
        ward_tls::pem::certs_from_pem("r", first.json()["chain"].as_str().unwrap().as_bytes())
            .unwrap();
    ward_e2e::Material {
        chain,
        key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// Runs `rounds` interleaved rounds of every configuration.
pub async fn run(dir: &Path, rounds: usize, key: &rcgen::KeyPair, csr: &str) -> Vec<Figures> {
    let pg = Postgres::start();
    let mut figures: Vec<Figures> = [
        "SQLite, 1 node",
        "PostgreSQL, 1 replica",
        "PostgreSQL, 2 replicas",
    ]
    .into_iter()
    .map(|name| Figures {
        name,
        ..Figures::default()
    })
    .collect();
    let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
    let bundles = ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
    );
    let anon = ward_e2e::https::connector(bundles.clone(), "spiffe://example.org/ward/ca", None);
    for round in 0..rounds {
        for (k, fig) in figures.iter_mut().enumerate() {
            let tag = format!("r{round}-{k}");
            let (state, store, db) = if k == 0 {
                let path = dir.join(format!("state-{tag}.db"));
                let store = Store::open_sqlite(&path).unwrap();
                (format!("state: {}\n", path.display()), store, None)
            } else {
                let db = pg.create_database(&format!("bench_{}", tag.replace('-', "_")));
                let yaml = pg.state_yaml(&db);
                let text = format!("trust_domain: example.org\nlisten: 127.0.0.1:0\n{yaml}");
                let config = ward_ca::config::CaConfig::parse("bench", &text, dir).unwrap();
                ward_ca::keys::db::import_dir(&config, &dir.join("ca"))
                    .await
                    .unwrap();
                (yaml, Store::open(&config.state).await.unwrap(), Some(db))
            };
            let mut bodies = tokens(&store, csr).await;
            drop(store);
            let replicas = start_replicas(dir, &tag, &state, if k == 2 { 2 } else { 1 });
            let deadline = Instant::now() + Duration::from_secs(20);
            for addr in &replicas.addrs {
                while ward_e2e::https::Conn::open(&anon, *addr).await.is_err() {
                    assert!(Instant::now() < deadline, "ward-ca did not start");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            // One enrollment provides the client certificate for the renew run. It lives 12 s,
            // so by the renew run (after the 5 s enroll run) it is past the first third of its
            // life, where the CA limits how often one certificate renews; the per-ID renewal and
            // JWT-SVID limits are lifted in the config above. All are measured out of these
            // figures (a /v1/jwt run at 50 per second would measure the limiter).
            let mut c = ward_e2e::https::Conn::open(&anon, replicas.addrs[0])
                .await
                .unwrap();
            let material = enroll_one(&mut c, &bodies.pop().unwrap(), key).await;
            // A second token, for the /v1/jwt run's own certificate: the first one has expired
            // by then (12 s), and every call would be refused.
            let jwt_token = bodies.pop().unwrap();
            let before = db.as_deref().map(|db| transactions(&pg, db));
            let (enroll, enroll_errors, enrolled) = load(
                &replicas.addrs,
                anon.clone(),
                "/v1/enroll",
                Arc::new(bodies),
            )
            .await;
            if let (Some(db), Some(before)) = (db.as_deref(), before) {
                let after = transactions(&pg, db);
                fig.round_trips
                    .push((after - before) / enrolled.max(1) as f64);
            }
            let mtls = ward_e2e::https::connector(
                bundles.clone(),
                "spiffe://example.org/ward/ca",
                Some(material),
            );
            let renew_body = Arc::new(vec![json!({"csr": csr}).to_string()]);
            let (renew, renew_errors, _) =
                load(&replicas.addrs, mtls.clone(), "/v1/renew", renew_body).await;
            drop(mtls);
            let mut c = ward_e2e::https::Conn::open(&anon, replicas.addrs[0])
                .await
                .unwrap();
            let fresh = enroll_one(&mut c, &jwt_token, key).await;
            let mtls = ward_e2e::https::connector(
                bundles.clone(),
                "spiffe://example.org/ward/ca",
                Some(fresh),
            );
            let jwt_body = Arc::new(vec![json!({"audience": ["sts.amazonaws.com"]}).to_string()]);
            let (jwt, jwt_errors, _) = load(&replicas.addrs, mtls, "/v1/jwt", jwt_body).await;
            fig.jwt.push(jwt);
            fig.errors += jwt_errors;
            fig.enroll.push(enroll);
            fig.renew.push(renew);
            fig.errors += enroll_errors + renew_errors;
        }
    }
    figures
}
