//! Two trust domains federated both ways: ward-ca daemons for `a.example` and `b.example`,
//! each serving its bundle endpoint (https_spiffe) and fetching the other's, with sidecars in
//! each. An `a.example` client allowed by `b.example`'s policy reaches its service; another
//! `a.example` identity is denied; a certificate signed by `b.example`'s CA that claims an
//! `a.example` ID is refused (each domain is verified with its own bundle only); when
//! `b.example`'s CA goes away `a.example` keeps the last good bundle; and a restarted
//! `a.example` CA keeps it from its state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::Duration;

use support::ca::insert_token;
use support::*;
use tokio::net::TcpStream;
use ward_e2e::kit::free_port;
use ward_e2e::{leaf_params, TestCa};

const A_FRONTEND: &str = "spiffe://a.example/ns/web/sa/frontend";
const A_INTRUDER: &str = "spiffe://a.example/ns/evil/sa/intruder";
const B_BACKEND: &str = "spiffe://b.example/ns/api/sa/backend";

/// This CA's SPIFFE bundle document, as `ward-ca federation bundle` prints it.
fn bundle_document(ca: &TestCa, td: &str) -> String {
    let a = ward_ca::authority::Authority::load(&ca.path(), &td.parse().unwrap()).unwrap();
    serde_json::json!({ "keys": a.jwks, "spiffe_sequence": 0 }).to_string()
}

/// The config of `td`'s CA, serving its endpoint on `own_port` and federating with `peer`
/// (trust domain, endpoint port) whose first bundle is in `peer.json`.
fn ca_yaml(ca: &TestCa, td: &str, own_port: u16, peer: (&str, u16)) -> String {
    format!(
        "trust_domain: {td}\nca_dir: {}\nlisten: \"127.0.0.1:0\"\nstate: state.db\ndns_names: [localhost]\nbundle_refresh_hint: 1s\n\
         federation:\n  bundle_endpoint: {{ listen: \"127.0.0.1:{own_port}\", profile: https_spiffe }}\n\
         \x20 federates_with:\n    - {{ trust_domain: {}, url: \"https://localhost:{}/bundle\", profile: https_spiffe, endpoint_spiffe_id: \"spiffe://{}/ward/ca\", bundle_file: peer.json }}\n",
        ca.path().display(),
        peer.0,
        peer.1,
        peer.0
    )
}

async fn start_ca(dir: &Path, text: &str) -> ward_ca::server::RunningCa {
    std::fs::write(dir.join("ca.yaml"), text).unwrap();
    let config = ward_ca::config::CaConfig::parse("ca.yaml", text, dir).unwrap();
    ward_ca::server::start(config).await.unwrap()
}

/// A sidecar of `td` for `id`, enrolled with `ca` (its API at `ca_url`).
async fn sidecar(
    pki: &Pki,
    name: &str,
    td: &str,
    ca: (&TestCa, &Path, &str),
    id: &str,
    listeners: &str,
    policy: &str,
) -> ward_proxy::RunningProxy {
    let token = pki.file(&format!("{name}.token"), &insert_token(ca.1, id));
    let policy = pki.file(&format!("{name}-policy.yaml"), policy);
    let text = format!(
        "trust_domain: {td}\nidentity:\n  ca: {{ url: \"{}\", bundle: {}, token_file: {} }}\npolicy: {}\n{listeners}admin: \"127.0.0.1:0\"\nreload_interval: 1s\n",
        ca.2,
        ca.0.path().join("bundle.pem").display(),
        token.display(),
        policy.display()
    );
    let path = pki.file(&format!("{name}.yaml"), &text);
    ward_proxy::start(ward_proxy::Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}")))
        .await
        .unwrap()
}

async fn echo(addr: std::net::SocketAddr) -> Result<Vec<u8>, std::io::Error> {
    let mut s = TcpStream::connect(addr).await?;
    round_trip(&mut s, b"across").await
}

/// Two CAs federated both ways, and b.example's backend sidecar in front of an echo app,
/// allowing a.example's frontend by policy.
struct Pair {
    ta: TestCa,
    tb: TestCa,
    da: tempfile::TempDir,
    ca_a: ward_ca::server::RunningCa,
    ca_b: ward_ca::server::RunningCa,
    url_a: String,
    pki: Pki,
    backend: ward_proxy::RunningProxy,
    /// The backend sidecar's inbound listener.
    api: std::net::SocketAddr,
    /// The outbound listener YAML an a.example client uses to reach it.
    out: String,
    _keep: (tempfile::TempDir, EchoApp),
}

async fn pair() -> Pair {
    let (ta, tb) = (TestCa::new("a.example"), TestCa::new("b.example"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (free_port(), free_port());
    std::fs::write(
        da.path().join("peer.json"),
        bundle_document(&tb, "b.example"),
    )
    .unwrap();
    std::fs::write(
        db.path().join("peer.json"),
        bundle_document(&ta, "a.example"),
    )
    .unwrap();
    let ca_a = start_ca(da.path(), &ca_yaml(&ta, "a.example", pa, ("b.example", pb))).await;
    let ca_b = start_ca(db.path(), &ca_yaml(&tb, "b.example", pb, ("a.example", pa))).await;
    let (url_a, url_b) = (
        format!("https://localhost:{}", ca_a.addr.port()),
        format!("https://localhost:{}", ca_b.addr.port()),
    );

    let pki = Pki::new();
    let app = EchoApp::start().await;
    let backend = sidecar(
        &pki,
        "backend",
        "b.example",
        (&tb, db.path(), &url_b),
        B_BACKEND,
        &format!("inbound:\n  - {{ name: api, listen: \"127.0.0.1:0\", forward: \"{}\" }}\n", app.addr),
        &format!("rules:\n  - name: a-frontend\n    from: [\"{A_FRONTEND}\"]\n    to: {{ listeners: [api] }}\n"),
    )
    .await;
    let api = addr_of(&backend.inbound, "api");
    let out = format!("outbound:\n  - {{ name: b, listen: \"127.0.0.1:0\", upstream: \"{api}\", server_id: \"{B_BACKEND}\" }}\n");
    Pair {
        ta,
        tb,
        da,
        ca_a,
        ca_b,
        url_a,
        pki,
        backend,
        api,
        out,
        _keep: (db, app),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_domains_talk_by_policy_and_never_vouch_for_each_other() {
    let Pair {
        ta,
        tb,
        da,
        ca_a,
        ca_b,
        url_a,
        pki,
        backend,
        api,
        out,
        _keep,
    } = pair().await;
    // The frontend also serves the Workload API: its app sees b.example's bundle as federated.
    let socket = pki.path("frontend.sock");
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(pki.path("")).unwrap());
    let with_api = format!(
        "{out}workload_api: {{ socket: {}, allowed_uids: [{uid}] }}\n",
        socket.display()
    );
    let frontend = sidecar(
        &pki,
        "frontend",
        "a.example",
        (&ta, da.path(), &url_a),
        A_FRONTEND,
        &with_api,
        "rules: []\n",
    )
    .await;
    let intruder = sidecar(
        &pki,
        "intruder",
        "a.example",
        (&ta, da.path(), &url_a),
        A_INTRUDER,
        &out,
        "rules: []\n",
    )
    .await;

    // Allowed by b.example's policy: through; another a.example identity: denied.
    let via_frontend = addr_of(&frontend.outbound, "b");
    assert_eq!(echo(via_frontend).await.unwrap(), b"across");
    assert!(
        echo(addr_of(&intruder.outbound, "b")).await.is_err(),
        "an identity b.example's policy does not name got in"
    );

    let app = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", socket.display()))
        .await
        .unwrap();
    let bundles = app.fetch_x509_bundles().await.unwrap();
    let b_roots = ward_tls::pem::load_certs(&tb.path().join("bundle.pem")).unwrap();
    let got = bundles
        .get(&spiffe::TrustDomain::new("b.example").unwrap())
        .expect("the app gets b.example's bundle");
    assert_eq!(got.authorities()[0].as_ref(), b_roots[0].as_ref());
    drop(app);

    // b.example's CA signs a certificate claiming an a.example ID: b.example's sidecar judges
    // it with a.example's bundle and refuses it. The same ID signed by a.example's CA passes.
    let forged = tb.forge(&leaf_params(A_FRONTEND));
    let client = |m| {
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(ward_e2e::raw_client_config(
            tb.bundles(),
            m,
            B_BACKEND,
        )))
    };
    assert!(
        try_echo(&client(forged), api).await.is_err(),
        "a b.example CA vouched for an a.example ID"
    );
    assert!(try_echo(&client(ta.issue(A_FRONTEND)), api).await.is_ok());

    // b.example's CA goes away: a.example keeps the last good bundle and counts the failures.
    ca_b.shutdown().await;
    let failures = "ward_ca_federation_failures_total{trust_domain=\"b.example\"}";
    eventually("a.example notices b.example's endpoint is gone", || {
        ward_e2e::metrics::sample_or_zero(&ca_a.service.metrics.encode(), failures) >= 1.0
    })
    .await;
    assert!(ca_a
        .service
        .foreign
        .get(&"b.example".parse().unwrap())
        .is_some());
    frontend.reload();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        echo(via_frontend).await.unwrap(),
        b"across",
        "the last good bundle stopped working"
    );

    // A restarted a.example CA keeps b.example's bundle from its state (not the file).
    ca_a.shutdown().await;
    std::fs::remove_file(da.path().join("peer.json")).unwrap();
    let text = std::fs::read_to_string(da.path().join("ca.yaml")).unwrap();
    let again = start_ca(da.path(), &text).await;
    let kept = again.service.foreign.get(&"b.example".parse().unwrap());
    assert!(
        kept.is_some_and(|b| !b.roots.is_empty()),
        "the foreign bundle did not survive a restart"
    );
    again.shutdown().await;
    for p in [frontend, intruder, backend] {
        p.shutdown().await;
    }
}

/// b.example rotates its root (`prepare --root`, `activate`, `finish`) while a.example's
/// frontend calls its backend: a.example's CA follows b.example's bundle through the rotation
/// (authenticating each fetch with the bundle it already holds) and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_root_rotation_is_followed_without_a_failed_request() {
    let Pair {
        ta,
        tb,
        da,
        ca_a,
        ca_b,
        url_a,
        pki,
        backend,
        out,
        _keep,
        ..
    } = pair().await;
    let frontend = sidecar(
        &pki,
        "frontend",
        "a.example",
        (&ta, da.path(), &url_a),
        A_FRONTEND,
        &out,
        "rules: []\n",
    )
    .await;
    let via = addr_of(&frontend.outbound, "b");
    assert_eq!(echo(via).await.unwrap(), b"across");
    let b_td: ward_identity::TrustDomain = "b.example".parse().unwrap();
    let first_root = ca_a.service.foreign.get(&b_td).unwrap().roots[0].clone();

    // Traffic all along: one new connection every 50 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match echo(via).await {
                    Ok(got) if got == b"across" => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, failed)
        })
    };
    let dir = tb.path();
    ward_ca::keys::dir::rotation::prepare(&dir, true, 0, Default::default()).unwrap();
    // The new root reaches a.example's CA and then its sidecars (1 s hints), before
    // anything is signed under it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ward_ca::keys::dir::rotation::activate(&dir, ward_identity::unix_now(), 1, false).unwrap();
    // b.example's sidecar renews under the new root at its next bundle fetch.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ward_ca::keys::dir::rotation::finish(&dir).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let roots = ca_a.service.foreign.get(&b_td).unwrap().roots.clone();
        if roots.len() == 1 && roots[0] != first_root {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a.example never followed b.example's new root"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 50, "too little traffic to tell: {ok}");
    frontend.shutdown().await;
    backend.shutdown().await;
    ca_a.shutdown().await;
    ca_b.shutdown().await;
}
