//! `make bench-ca` (second part): the Workload API's `FetchJWTSVID` latency from the sidecar's
//! cache, at a fixed 1,000 calls per second for 10 seconds (open loop: each call's latency is
//! counted from when it was due, so a stall is not hidden by the calls it delayed), from the
//! `spiffe` crate's client over the real Unix socket. Service time (from the moment the call
//! is actually sent) is reported beside it: tokio's timer ticks once a millisecond, so a call
//! may be sent up to a millisecond after it was due, and the open-loop figure includes that. CA and sidecar run in this process on
//! their own runtime; the load generator on another. Prints a Markdown table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark report

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use spiffe::WorkloadApiClient;

const RATE: u64 = 1_000;
const SECONDS: u64 = 10;
const ID: &str = "spiffe://example.org/ns/bench/sa/app";

/// Starts a CA (with JWT-SVIDs) and a sidecar serving the Workload API on `dir/api.sock`.
async fn start(dir: &Path) -> (ward_ca::server::RunningCa, ward_proxy::RunningProxy) {
    let test_ca = ward_e2e::TestCa::new("example.org");
    let ca_dir = test_ca.path();
    let text = format!(
        "trust_domain: example.org\nca_dir: {}\nlisten: \"127.0.0.1:0\"\nstate: {}\n\
         dns_names: [localhost]\njwt_svid: {{ default_ttl: 5m }}\n",
        ca_dir.display(),
        dir.join("state.db").display()
    );
    let config = ward_ca::config::CaConfig::parse("ca.yaml", &text, dir).unwrap();
    let ca = ward_ca::server::start(config).await.unwrap();
    let token = ward_e2e::token_in_state(&ca.service.state, ID, 600).await;
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::write(dir.join("policy.yaml"), "rules: []\n").unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir).unwrap());
    let proxy_text = format!(
        "trust_domain: example.org\nidentity:\n  ca: {{ url: \"https://localhost:{}\", bundle: {}, token_file: token }}\n\
         policy: policy.yaml\nadmin: \"127.0.0.1:0\"\nworkload_api: {{ socket: api.sock, allowed_uids: [{uid}] }}\n",
        ca.addr.port(),
        ca_dir.join("bundle.pem").display()
    );
    std::fs::write(dir.join("proxy.yaml"), proxy_text).unwrap();
    let proxy = ward_proxy::start(ward_proxy::Config::load(&dir.join("proxy.yaml")).unwrap())
        .await
        .unwrap();
    std::mem::forget(test_ca); // keep its directory for the run
    (ca, proxy)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_ca, _proxy) = servers.block_on(start(dir.path()));
    let socket = format!("unix:{}", dir.path().join("api.sock").display());

    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (histogram, errors) = load.block_on(async move {
        let client = WorkloadApiClient::connect_to(&socket).await.unwrap();
        // Wait for the app SVID, and warm the cache (the first call goes to the CA).
        client.fetch_x509_svid().await.unwrap();
        client.fetch_jwt_token(["sts.example"], None).await.unwrap();
        let new = || {
            Arc::new(Mutex::new(
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
            ))
        };
        let (histogram, service) = (new(), new());
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..RATE * SECONDS {
            let due = start + Duration::from_micros(i * 1_000_000 / RATE);
            tokio::time::sleep_until(due.into()).await;
            let (client, histogram, errors) = (client.clone(), histogram.clone(), errors.clone());
            let service = service.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                match client.fetch_jwt_token(["sts.example"], None).await {
                    Ok(_) => {
                        let us = |t: Instant| t.elapsed().as_micros().max(1) as u64;
                        histogram.lock().unwrap().record(us(due)).unwrap();
                        service.lock().unwrap().record(us(sent)).unwrap();
                    }
                    Err(_) => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let h = histogram.lock().unwrap().clone();
        let s = service.lock().unwrap().clone();
        ((h, s), errors.load(std::sync::atomic::Ordering::Relaxed))
    });
    let (histogram, service) = histogram;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let sms = |q: f64| service.value_at_quantile(q) as f64 / 1000.0;
    println!("\n| Workload API `FetchJWTSVID` from cache, {RATE}/s for {SECONDS} s (spiffe crate client, Unix socket) | value |");
    println!("|---|---|");
    println!("| calls answered | {} |", histogram.len());
    println!("| errors | {errors} |");
    println!("| p50 latency from due (open loop) | {:.3} ms |", ms(0.50));
    println!("| p99 latency from due (open loop) | {:.3} ms |", ms(0.99));
    println!("| p50 service time (from send) | {:.3} ms |", sms(0.50));
    println!("| p99 service time (from send) | {:.3} ms |", sms(0.99));
    println!(
        "| max latency | {:.3} ms |",
        histogram.max() as f64 / 1000.0
    );
}
