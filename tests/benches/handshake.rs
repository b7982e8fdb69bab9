//! What a ward handshake costs in CPU, by crypto provider and key-exchange group: the
//! numbers behind `ward-tls`'s provider choice (`docs/benchmarks.md`, "Post-quantum key
//! exchange"). `cargo bench -p ward-e2e --bench handshake`.
//!
//! Full mTLS 1.3 handshakes run in memory on one thread (client and server CPU together,
//! ward's SPIFFE verifiers on both sides, P-256 SVIDs), the variants interleaved round by
//! round, the median round reported. Then the primitives a handshake is made of, so the
//! difference can be attributed: each key exchange, a P-256 signature and its verification
//! with each provider, and bulk AES-128-GCM through a connection with each provider.
//! `WARD_BENCH_ONLY=<variant>` runs one variant in a loop for `perf record`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark binary

use std::sync::Arc;
use std::time::Instant;

use rustls::crypto::{aws_lc_rs, ring as ring_provider, CryptoProvider, SupportedKxGroup};
use rustls::{ClientConfig, ServerConfig};
use ward_e2e::{handshake_in_memory, transfer, TestCa};
use ward_identity::IdPattern;
use ward_tls::provider::{crypto_provider_with, PROTOCOL_VERSIONS};
use ward_tls::{KeyExchange, KxGroup, SpiffeClientVerifier, SpiffeServerVerifier};

const CLIENT: &str = "spiffe://example.org/ns/web/sa/frontend";
const SERVER: &str = "spiffe://example.org/ns/api/sa/backend";

/// A measured operation and its name.
type Case<'a> = (&'a str, Box<dyn FnMut() + 'a>);

struct Variant {
    name: &'static str,
    provider: Arc<CryptoProvider>,
}

fn with_ring_suites(
    base: CryptoProvider,
    kx: Vec<&'static dyn SupportedKxGroup>,
) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: ward_tls::provider::crypto_provider().cipher_suites.clone(),
        kx_groups: kx,
        ..base
    })
}

fn variants() -> Vec<Variant> {
    let groups = |g: &[KxGroup]| KeyExchange::new(g.to_vec()).unwrap();
    vec![
        Variant {
            // ward until the post-quantum change: ring for everything, X25519.
            name: "ring only, X25519",
            provider: with_ring_suites(
                ring_provider::default_provider(),
                vec![ring_provider::kx_group::X25519],
            ),
        },
        Variant {
            name: "ward (aws-lc-rs kx + ring), X25519",
            provider: crypto_provider_with(&groups(&[KxGroup::X25519])),
        },
        Variant {
            name: "ward (aws-lc-rs kx + ring), X25519MLKEM768",
            provider: crypto_provider_with(&KeyExchange::default()),
        },
        Variant {
            name: "aws-lc-rs only, X25519MLKEM768",
            provider: Arc::new(CryptoProvider {
                kx_groups: vec![
                    aws_lc_rs::kx_group::X25519MLKEM768,
                    aws_lc_rs::kx_group::X25519,
                ],
                ..aws_lc_rs::default_provider()
            }),
        },
    ]
}

fn configs(ca: &TestCa, provider: &Arc<CryptoProvider>) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let s = ca.issue(SERVER);
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::new(ca.bundles())))
        .with_single_cert(s.chain, s.key)
        .unwrap();
    let c = ca.issue(CLIENT);
    let verifier = SpiffeServerVerifier::new(ca.bundles(), vec![IdPattern::parse(SERVER).unwrap()]);
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(c.chain, c.key)
        .unwrap();
    // Every handshake full, as between ward sidecars without resumption.
    let (mut client, mut server) = (client, server);
    client.resumption = rustls::client::Resumption::disabled();
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    (Arc::new(client), Arc::new(server))
}

/// One full handshake; panics if it needed a HelloRetryRequest.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>, buf: &mut Vec<u8>) {
    let (_, s) = handshake_in_memory(client.clone(), server.clone(), buf);
    assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Full));
}

/// Microseconds per call of `f`, as the median of `rounds` rounds of `n` calls, each round
/// running every entry of `fs` once (interleaved).
fn interleaved(rounds: usize, n: usize, fs: &mut [Case<'_>]) -> Vec<(String, f64)> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); fs.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            times[i].push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
    }
    fs.iter()
        .zip(times)
        .map(|((name, _), mut t)| {
            t.sort_by(f64::total_cmp);
            ((*name).to_owned(), t[t.len() / 2])
        })
        .collect()
}

fn kx_cost(group: &'static dyn SupportedKxGroup) {
    // Client: key pair; server: its share and the secret; client: the secret.
    let client = group.start().unwrap();
    let server = group.start_and_complete(client.pub_key()).unwrap();
    client.complete(&server.pub_key).unwrap();
}

fn main() {
    let ca = TestCa::new("example.org");
    let variants = variants();
    let built: Vec<_> = variants
        .iter()
        .map(|v| (v.name, configs(&ca, &v.provider)))
        .collect();
    if let Ok(only) = std::env::var("WARD_BENCH_ONLY") {
        let (_, (c, s)) = built
            .iter()
            .find(|(n, _)| *n == only)
            .expect("no such variant");
        let mut buf = Vec::new();
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs() < 20 {
            handshake(c, s, &mut buf);
            n += 1;
        }
        println!(
            "{only}: {:.1} µs per handshake",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        return;
    }

    println!(
        "## Full mTLS handshakes, client + server CPU on one thread (µs, median of 7 rounds)\n"
    );
    let mut fs: Vec<Case<'_>> = Vec::new();
    for (name, (c, s)) in &built {
        let mut buf = Vec::new();
        fs.push((name, Box::new(move || handshake(c, s, &mut buf))));
    }
    for (name, us) in interleaved(7, 400, &mut fs) {
        println!("| {name} | {us:.1} |");
    }
    drop(fs);

    println!("\n## Primitives (µs per operation, median of 7 rounds)\n");
    let sig_key = |p: &CryptoProvider| {
        let m = ca.issue(CLIENT);
        p.key_provider.load_private_key(m.key).unwrap()
    };
    let ring_key = sig_key(&ring_provider::default_provider());
    let aws_key = sig_key(&aws_lc_rs::default_provider());
    let scheme = [rustls::SignatureScheme::ECDSA_NISTP256_SHA256];
    let ring_signer = ring_key.choose_scheme(&scheme).unwrap();
    let aws_signer = aws_key.choose_scheme(&scheme).unwrap();
    let message = [7u8; 130];
    let sig = ring_signer.sign(&message).unwrap();
    let spki = ring_key.public_key().unwrap();
    let verify = |alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm| {
        alg.verify_signature(spki_key(&spki), &message, &sig)
            .unwrap();
    };
    let mut fs: Vec<Case<'_>> = vec![
        (
            "kx X25519, ring (both sides)",
            Box::new(|| kx_cost(ring_provider::kx_group::X25519)),
        ),
        (
            "kx X25519, aws-lc-rs (both sides)",
            Box::new(|| kx_cost(aws_lc_rs::kx_group::X25519)),
        ),
        (
            "kx X25519MLKEM768, aws-lc-rs (both sides)",
            Box::new(|| kx_cost(aws_lc_rs::kx_group::X25519MLKEM768)),
        ),
        (
            "kx secp256r1, aws-lc-rs (both sides)",
            Box::new(|| kx_cost(aws_lc_rs::kx_group::SECP256R1)),
        ),
        (
            "ECDSA P-256 sign, ring",
            Box::new(|| drop(ring_signer.sign(&message).unwrap())),
        ),
        (
            "ECDSA P-256 sign, aws-lc-rs",
            Box::new(|| drop(aws_signer.sign(&message).unwrap())),
        ),
        (
            "ECDSA P-256 verify, ring",
            Box::new(|| verify(webpki::ring::ECDSA_P256_SHA256)),
        ),
        (
            "ECDSA P-256 verify, aws-lc-rs",
            Box::new(|| verify(webpki::aws_lc_rs::ECDSA_P256_SHA256)),
        ),
    ];
    for (name, us) in interleaved(7, 500, &mut fs) {
        println!("| {name} | {us:.1} |");
    }
    drop(fs);

    println!(
        "\n## Bulk AES-128-GCM through a connection, 16 KiB writes (MB/s, median of 7 rounds)\n"
    );
    let ring_conf = configs(&ca, &variants[2].provider);
    let aws_conf = configs(&ca, &variants[3].provider);
    let mut fs: Vec<Case<'_>> = vec![
        ("ring (ward)", bulk(&ring_conf)),
        ("aws-lc-rs", bulk(&aws_conf)),
    ];
    for (name, us) in interleaved(7, 200, &mut fs) {
        println!("| {name} | {:.0} |", 16384.0 / us);
    }
}

/// The raw public key inside a DER SubjectPublicKeyInfo (P-256: the last 65 bytes).
fn spki_key<'a>(spki: &'a rustls_pki_types::SubjectPublicKeyInfoDer<'_>) -> &'a [u8] {
    let der: &[u8] = spki.as_ref();
    &der[der.len() - 65..]
}

/// A closure that sends 16 KiB from client to server over an established connection.
fn bulk(conf: &(Arc<ClientConfig>, Arc<ServerConfig>)) -> Box<dyn FnMut()> {
    use std::io::{Read, Write};
    let mut buf = Vec::new();
    let (mut c, mut s) = handshake_in_memory(conf.0.clone(), conf.1.clone(), &mut buf);
    let data = vec![0x5au8; 16384];
    let mut out = vec![0u8; 16384];
    Box::new(move || {
        c.writer().write_all(&data).unwrap();
        transfer(&mut c, &mut s, &mut buf);
        let mut got = 0;
        while got < data.len() {
            got += s.reader().read(&mut out[got..]).unwrap();
        }
    })
}
