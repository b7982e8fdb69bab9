//! `make bench-ca`: how fast the CA issues.
//!
//! 1. In-process issuances per second on one core: CSR parse + signature check + sign +
//!    profile self-check, the whole `Issuer::issue` path, against its crypto floor in
//!    interleaved rounds (median reported).
//! 2. End to end against the real `ward-ca serve` binary (release build) over loopback TLS:
//!    `/v1/enroll` with fresh join tokens and `/v1/renew` over mTLS, from concurrent
//!    keep-alive clients in this process, on each state engine (`ca/engines.rs`: SQLite, and
//!    PostgreSQL with one and two replicas). Client, server(s) and database share the
//!    machine's two cores, so these figures include the load generator's own cost.
//!
//! Prints a Markdown table; docs/benchmarks.md records the results with the date.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark report

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use ward_identity::SpiffeId;

#[path = "ca/engines.rs"]
mod engines;

const BIN: &str = env!("CARGO_BIN_EXE_ward-ca");
/// Interleaved rounds of the end-to-end figures, per engine.
const ENGINE_ROUNDS: usize = 3;
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

/// JWT-SVID signing on one core against its floor, in the same rounds: the floor is one ES256
/// signature (ring) over a message of a JWT-SVID's size; the measured path is the whole
/// `jwt_svid::sign` (header and claims as JSON, base64url, sign). (floor, jwt, median ratio).
fn in_process_jwt(dir: &Path) -> (f64, f64, f64) {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let raw =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let msg = [7u8; 250];
    let pem = std::fs::read_to_string(dir.join("ca").join(ward_ca::keys::dir::JWT_KEY)).unwrap();
    let key = ward_ca::authority::jwt_key::JwtKey::from_pem(&pem, Path::new("jwt.key")).unwrap();
    let id = SpiffeId::parse("spiffe://example.org/ns/bench/sa/app").unwrap();
    let audience = vec!["sts.amazonaws.com".to_owned()];
    let (mut floors, mut jwts, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let floor = per_second(|| {
            raw.sign(&rng, &msg).unwrap();
        });
        let jwt = per_second(|| {
            ward_ca::authority::jwt_svid::sign(
                &key,
                &id,
                &audience,
                Duration::from_secs(300),
                Some("https://oidc.example.com"),
                1_800_000_000,
            )
            .unwrap();
        });
        floors.push(floor);
        jwts.push(jwt);
        ratios.push(jwt / floor);
    }
    (median(floors), median(jwts), median(ratios))
}

/// `CLIENTS` keep-alive clients, split over `addrs`, POSTing `bodies` in turn for `SECONDS`:
/// (200s per second, non-200 answers, 200s).
async fn load(
    addrs: &[std::net::SocketAddr],
    connector: tokio_rustls::TlsConnector,
    path: &'static str,
    bodies: Arc<Vec<String>>,
) -> (f64, usize, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
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
                        Ok(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        // A connection the server closed fails at once, without yielding:
                        // spinning on it would starve the timer that ends the run. Reconnect.
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            match ward_e2e::https::Conn::open(&connector, addr).await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
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
    let done = done.load(Ordering::Relaxed);
    (
        done as f64 / start.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed),
        done,
    )
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ward_ca::keys::dir::init(&dir.join("ca"), &"example.org".parse().unwrap(), false).unwrap();
    let (floor, issuance, ratio) = in_process(dir);
    let (jwt_floor, jwt_rate, jwt_ratio) = in_process_jwt(dir);

    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engines = runtime.block_on(engines::run(dir, ENGINE_ROUNDS, &key, &csr));

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
    println!("Command: `make bench-ca` (in-process: median of {ROUNDS} interleaved 1 s rounds; API: median of {ENGINE_ROUNDS} interleaved rounds of {SECONDS} s per figure and engine, {CLIENTS} keep-alive HTTP/1.1 clients split over the replicas, a fresh state and daemon per round; PostgreSQL {} on the same machine, fsync and synchronous_commit on)\n", postgres_version());
    println!("| measurement | per second | target |");
    println!("|---|---|---|");
    println!("| crypto floor: one P-256 verify + one sign (ring), 1 core, same run | {floor:.0} | baseline |");
    println!("| in-process issuance (CSR verify + sign + self-check), 1 core | {issuance:.0} ({:.0}% of the floor) | >= 8000 |", 100.0 * ratio);
    println!(
        "| ES256 floor: one P-256 sign (ring), 1 core, same run | {jwt_floor:.0} | baseline |"
    );
    println!("| in-process JWT-SVID signing (claims, JSON, base64url, sign), 1 core | {jwt_rate:.0} ({:.0}% of the ES256 floor) | >= 80% of the floor |", 100.0 * jwt_ratio);
    let sqlite = engines[0].medians().0;
    for fig in &engines {
        let (enroll, renew, round_trips) = fig.medians();
        let target = if fig.name.starts_with("SQLite") {
            ">= 3000".to_owned()
        } else if fig.name.ends_with("2 replicas") {
            format!(">= 0.8x SQLite: {:.2}x", enroll / sqlite)
        } else {
            format!("{:.2}x SQLite", enroll / sqlite)
        };
        let trips = round_trips.map_or(String::new(), |t| {
            format!("; {t:.2} database transactions per enrollment")
        });
        println!("| `/v1/enroll` end to end, {} (join token, recorded durably before the 200{trips}) | {enroll:.0} | {target} |", fig.name);
        println!(
            "| `/v1/renew` end to end (mTLS), {} | {renew:.0} | >= 3000 |",
            fig.name
        );
        println!(
            "| `/v1/jwt` end to end (mTLS, the caller's standing checked), {} | {:.0} | |",
            fig.name,
            median(fig.jwt.clone())
        );
        if fig.errors > 0 {
            println!("\nnon-200 responses, {}: {}", fig.name, fig.errors);
        }
    }
}

/// The PostgreSQL server version the bench ran against.
fn postgres_version() -> String {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).max())
        .map(|p| p.join("bin/postgres"))
        .unwrap_or_else(|| "postgres".into());
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
