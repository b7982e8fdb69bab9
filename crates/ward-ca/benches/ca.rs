//! `make bench-ca`: how fast the CA issues.
//!
//! 1. In-process issuances per second on one core: CSR parse + signature check + sign +
//!    profile self-check, the whole `Issuer::issue` path, against its crypto floor in
//!    interleaved rounds (median reported).
//! 2. End to end against the real `ward-ca serve` binary (release build) over loopback TLS:
//!    `/v1/enroll` with fresh join tokens and `/v1/renew` over mTLS, from concurrent
//!    keep-alive clients in this process. Client and server share the machine's two cores,
//!    so these figures include the load generator's own cost.
//!
//! Prints a Markdown table; docs/benchmarks.md records the results with the date.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark report

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use ward_ca::state::records::TokenRecord;
use ward_ca::state::sqlite::{self, queries};
use ward_ca::state::unix_now;
use ward_identity::SpiffeId;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");
const SECONDS: u64 = 5;
const CLIENTS: usize = 32;

/// Rounds of the in-process figures; each round times the crypto floor and the issuer for
/// one second each, back to back, so a noisy neighbour hits both alike. Medians are reported.
const ROUNDS: usize = 5;

/// Runs `op` in batches of 50 for about a second and returns operations per second.
fn per_second(mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for _ in 0..50 {
            op();
        }
        n += 50;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// In-process issuance on one core against its crypto floor, measured in the same rounds:
/// the floor is one P-256 ECDSA verify (the CSR's signature) plus one sign (the certificate)
/// with ring directly; issuance is the whole `Issuer::issue` path (CSR parse + signature
/// check + sign + profile self-check). Returns (floor, issuance, median per-round ratio).
fn in_process(dir: &Path) -> (f64, f64, f64) {
    use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let public = UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let msg = [7u8; 300];
    let sig = key.sign(&rng, &msg).unwrap();

    let issuer = ward_ca::Issuer::load(&dir.join("ca")).unwrap();
    let csr_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&csr_key)
        .unwrap();
    let id = SpiffeId::parse("spiffe://example.org/ns/bench/sa/app").unwrap();
    let ttl = Duration::from_secs(3600);

    let (mut floors, mut issues, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let floor = per_second(|| {
            public.verify(&msg, sig.as_ref()).unwrap();
            key.sign(&rng, &msg).unwrap();
        });
        let issue = per_second(|| {
            issuer
                .issue(csr.der(), &id, &[], ttl, OffsetDateTime::now_utc())
                .unwrap();
        });
        floors.push(floor);
        issues.push(issue);
        ratios.push(issue / floor);
    }
    (median(floors), median(issues), median(ratios))
}

async fn load(
    addr: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
    path: &'static str,
    bodies: Arc<Vec<String>>,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, done, stop, errors, bodies, connector) = (
                next.clone(),
                done.clone(),
                stop.clone(),
                errors.clone(),
                bodies.clone(),
                connector.clone(),
            );
            tokio::spawn(async move {
                let mut conn = ward_e2e::https::Conn::open(&connector, addr).await.unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let body = &bodies[i % bodies.len()];
                    match conn.request("POST", path, body.as_bytes()).await {
                        Ok(r) if r.status == 200 => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (
        done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
    )
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ward_ca::ca_dir::init(&dir.join("ca"), &"example.org".parse().unwrap(), false).unwrap();
    let (floor, issuance, ratio) = in_process(dir);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("ca.yaml"), format!(
        "trust_domain: example.org\nca_dir: ca\nlisten: \"127.0.0.1:{port}\"\nstate: state.db\nlimits: {{ enroll_per_ip_per_sec: 1000000 }}\n"
    )).unwrap();
    // Enough tokens for the enroll run, inserted in one transaction.
    let mut conn = sqlite::open(&dir.join("state.db")).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let tx = conn.transaction().unwrap();
    let mut enroll_bodies = Vec::new();
    for _ in 0..60_000 {
        let t = ward_ca::tokens::generate().unwrap();
        let now = unix_now();
        queries::insert_token(
            &tx,
            &TokenRecord {
                hash: t.hash,
                token_id: t.token_id,
                spiffe_id: "spiffe://example.org/ns/bench/sa/app".into(),
                created_at: now,
                expires_at: now + 3600,
                used_at: None,
                revoked_at: None,
            },
        )
        .unwrap();
        enroll_bodies.push(json!({"csr": csr, "token": t.secret}).to_string());
    }
    tx.commit().unwrap();
    drop(conn);

    let mut daemon = Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--config", "ca.yaml"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let roots = ward_tls::pem::load_certs(&dir.join("ca/bundle.pem")).unwrap();
    let bundles = ward_tls::BundleStore::new(
        ward_tls::TrustBundles::single("example.org".parse().unwrap(), roots).unwrap(),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (enroll, enroll_errors, renew, renew_errors) = runtime.block_on(async {
        let anon =
            ward_e2e::https::connector(bundles.clone(), "spiffe://example.org/ward/ca", None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while ward_e2e::https::Conn::open(&anon, addr).await.is_err() {
            assert!(Instant::now() < deadline, "ward-ca did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One enrollment provides the client certificate for the renew run.
        let mut c = ward_e2e::https::Conn::open(&anon, addr).await.unwrap();
        let first = c
            .request(
                "POST",
                "/v1/enroll",
                enroll_bodies.pop().unwrap().as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(first.status, 200);
        let chain =
            ward_tls::pem::certs_from_pem("r", first.json()["chain"].as_str().unwrap().as_bytes())
                .unwrap();
        let material = ward_e2e::Material {
            chain,
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        };
        let (enroll, enroll_errors) = load(addr, anon, "/v1/enroll", Arc::new(enroll_bodies)).await;
        let mtls =
            ward_e2e::https::connector(bundles, "spiffe://example.org/ward/ca", Some(material));
        let renew_body = Arc::new(vec![json!({"csr": csr}).to_string()]);
        let (renew, renew_errors) = load(addr, mtls, "/v1/renew", renew_body).await;
        (enroll, enroll_errors, renew, renew_errors)
    });
    let _ = daemon.kill();
    let _ = daemon.wait();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "\n## ward-ca ({} UTC, {cpu}, {} cores)\n",
        OffsetDateTime::now_utc().date(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("Command: `make bench-ca` (in-process: median of {ROUNDS} interleaved 1 s rounds; API: {SECONDS} s per figure, {CLIENTS} keep-alive HTTP/1.1 clients for the API rows)\n");
    println!("| measurement | per second | target |");
    println!("|---|---|---|");
    println!("| crypto floor: one P-256 verify + one sign (ring), 1 core, same run | {floor:.0} | baseline |");
    println!("| in-process issuance (CSR verify + sign + self-check), 1 core | {issuance:.0} ({:.0}% of the floor) | >= 8000 |", 100.0 * ratio);
    println!("| `/v1/enroll` end to end (join token, state recorded, synchronous=FULL) | {enroll:.0} | >= 3000 |");
    println!("| `/v1/renew` end to end (mTLS) | {renew:.0} | >= 3000 |");
    if enroll_errors + renew_errors > 0 {
        println!("\nnon-200 responses: enroll {enroll_errors}, renew {renew_errors}");
    }
}
