//! deploy/kubernetes run for real, as pods, with podman (`make kube-test`, part of
//! `make test`): the images `make image` built, the manifests as shipped through the one
//! transformation of `ward_e2e::kube_play` (deploy/README.md says what it changes and why),
//! on an `--internal` podman network of the test's own. No kubelet, no API server, no
//! Services: a stand-in serves the API server's JWKS, the test signs the projected
//! service-account tokens, and runs the manifests' probes from outside as a kubelet would.
//!
//! - The CA pod (SQLite on its claim, seeded by its init container from the keys Secret)
//!   passes its probes, having fetched the JWKS with its own service-account token.
//! - backend and frontend enroll with their projected tokens (the CA's Kubernetes attestor);
//!   frontend's app calls backend through both sidecars, across pods, and gets
//!   `hello from backend to spiffe://example.org/ns/ward-demo/sa/frontend`: backend's app
//!   saw the caller's identity.
//! - intruder (frontend's manifests under another name and service account) is refused, and
//!   its calls never reach backend's app.
//! - backend's policy edited through its ConfigMap (the kubelet's `..data` swap), no restart:
//!   a broken edit is refused and the old policy stays; an edit that allows nobody refuses
//!   frontend's next calls (docs/operations.md, step 6 of the Kubernetes install).
//! - Inside the running containers: uid 65532, read-only root, no capabilities, no new
//!   privileges, as the manifests promise.
//!
//! Ignored by plain `cargo test`: it needs the images (`make kube-test` builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ward_e2e::jwt::{jwks, kube_claims, JwtSigner};
use ward_e2e::kit::wait_until;
use ward_e2e::kube_api::ApiServer;
use ward_e2e::kube_play::{self, Options, PodPlay};
use ward_e2e::podman::{self, Cleanup};
use ward_e2e::processes::http_get_at;
use ward_e2e::TestCa;

const TD: &str = "example.org";
const API_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const FRONTEND: &str = "spiffe://example.org/ns/ward-demo/sa/frontend";
const INTRUDER: &str = "spiffe://example.org/ns/ward-demo/sa/intruder";

fn tag() -> String {
    std::env::var("WARD_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs every probe of `pod` from outside until each answers 200.
fn wait_ready(pod: &PodPlay, timeout: Duration) {
    for probe in &pod.probes {
        let addr = SocketAddr::from((pod.ip, probe.port));
        wait_until(
            timeout,
            &format!(
                "{}'s {} {} on {addr}{} (logs: {})",
                pod.name,
                probe.container,
                probe.kind,
                probe.path,
                podman::logs(&format!("{}-{}", pod.pod, probe.container))
            ),
            || http_get_at(addr, &probe.path).is_some_and(|(status, _)| status == 200),
        );
    }
}

/// `podman kube play`s one pod on `network`, then waits for its probes.
fn play(pod: &PodPlay, dir: &std::path::Path, network: &str, cleanup: &mut Cleanup) {
    cleanup.pods.push(pod.pod.clone());
    cleanup.volumes.extend(pod.volumes.iter().cloned());
    let file = dir.join(format!("{}.yaml", pod.pod));
    std::fs::write(&file, &pod.yaml).unwrap();
    let ip = pod.ip.to_string();
    podman::ok(&[
        "kube",
        "play",
        "--network",
        network,
        "--ip",
        &ip,
        file.to_str().unwrap(),
    ]);
    wait_ready(pod, Duration::from_secs(120));
    eprintln!("{} is ready at {}", pod.name, pod.ip);
}

/// Runs `bin args` with `input` on stdin; panics unless it succeeds; returns stdout.
fn run_with_stdin(bin: &std::path::Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for_log(container: &str, needle: &str, timeout: Duration) -> String {
    let mut last = String::new();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(timeout, needle, || {
            last = podman::logs(container);
            last.contains(needle)
        })
    }));
    assert!(
        found.is_ok(),
        "{container} never logged {needle:?}; its log:\n{last}"
    );
    last
}

#[test]
#[ignore = "needs podman and the images of `make image`: run by `make kube-test`"]
fn the_shipped_manifests_run_as_pods() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    podman::remove_stale("wardkt");
    let run = format!("wardkt{}", std::process::id());
    let prefix = format!("{run}-");
    let mut cleanup = Cleanup::default();
    let tmp = tempfile::tempdir().unwrap();
    let gateway = podman::network(&run, &mut cleanup);
    let base = u32::from(gateway);
    let pod_ip = move |n: usize| Ipv4Addr::from(base + 10 + n as u32);

    // The API server's stand-in, and the tokens the "kubelet" mounts.
    let signer = JwtSigner::rs256("sa-key-1");
    let bearers = Arc::new(Mutex::new(BTreeSet::new()));
    let api = rt.block_on(ApiServer::start(
        SocketAddr::from((gateway, 443)),
        tmp.path(),
        jwks(&[&signer]),
        bearers.clone(),
    ));
    let issued = bearers.clone();
    let token = move |ns: &str, sa: &str, aud: &str| {
        let jwt = signer.sign(&kube_claims(API_ISSUER, aud, ns, sa, 3600));
        if aud == API_ISSUER {
            issued.lock().unwrap().insert(jwt.clone());
        }
        jwt
    };

    // What an operator creates before applying (docs/operations.md): the CA keys Secret and
    // the trust-bundle ConfigMap.
    let ca = TestCa::new(TD);
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(ca.path()).unwrap() {
        let entry = entry.unwrap();
        keys.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    let bundle = String::from_utf8(keys["bundle.pem"].clone()).unwrap();
    let mut docs = kube_play::read_dirs(&[
        repo().join("deploy/kubernetes/ca"),
        repo().join("deploy/kubernetes/demo"),
    ])
    .unwrap();
    docs.push(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ward-bundle", "namespace": "ward-demo"},
        "data": {"bundle.pem": bundle},
    }));
    // intruder: frontend's manifests under another name, so another service account.
    let frontend = std::fs::read_to_string(repo().join("deploy/kubernetes/demo/frontend.yaml"))
        .unwrap()
        .replace("frontend", "intruder");
    let intruder: Vec<serde_json::Value> = serde_saphyr::from_multiple(&frontend).unwrap();
    docs.extend(intruder.into_iter().filter(|d| !d.is_null()));

    let files = tmp.path().join("volumes");
    let played = kube_play::transform(
        &docs,
        &Options {
            image_prefix: "ghcr.io/ward/",
            tag: &tag(),
            prefix: &prefix,
            pod_ip: &pod_ip,
            extra_hosts: ward_e2e::kube_api::API_HOSTS
                .iter()
                .map(|h| (h.to_string(), gateway))
                .collect(),
            secrets: BTreeMap::from([("ward-ca-keys".to_string(), keys)]),
            token: &token,
            api_ca_pem: api.ca_pem.clone(),
            api_audience: API_ISSUER,
            files: &files,
        },
    )
    .unwrap();
    eprintln!("not played (no podman equivalent): {:?}", played.dropped);
    let names: Vec<&str> = played.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ward-ca", "backend", "frontend", "intruder"]);

    for pod in &played.pods {
        play(pod, tmp.path(), &run, &mut cleanup);
    }
    assert!(
        api.served.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the CA never fetched the JWKS with its token"
    );
    let container = |pod: &str, c: &str| format!("{prefix}{pod}-{c}");

    // frontend -> backend, across pods, and backend's app knows who called.
    wait_for_log(
        &container("frontend", "app"),
        &format!("200 hello from backend to {FRONTEND}"),
        Duration::from_secs(60),
    );
    wait_for_log(
        &container("backend", "app"),
        &format!("from {FRONTEND}"),
        Duration::from_secs(5),
    );
    // intruder is refused, and never reaches the app.
    let refused = wait_for_log(
        &container("intruder", "app"),
        &format!("GET http://127.0.0.1:9001/: 403 {{\"error\":\"peer_denied\",\"message\":\"backend.ward-demo.svc:8443 refused {INTRUDER}"),
        Duration::from_secs(60),
    );
    assert!(!refused.contains(": 200 "), "{refused}");
    let backend_app = podman::logs(&container("backend", "app"));
    assert!(!backend_app.contains(INTRUDER), "{backend_app}");
    let backend = played.pods.iter().find(|p| p.name == "backend").unwrap();
    let (_, metrics) = http_get_at(SocketAddr::from((backend.ip, 9901)), "/metrics").unwrap();
    let refusals = "ward_handshake_failures_total{listener=\"api\",direction=\"inbound\",reason=\"policy_denied\"}";
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(refusals) && !l.ends_with(" 0")),
        "backend's sidecar counted no refusal:\n{metrics}"
    );

    // docs/operations.md, "Change the policy without a restart": backend's ConfigMap edited,
    // delivered as the kubelet delivers it (a `..data` swap), and no pod restarted.
    let backend_config = files.join(&backend.pod).join("ward-config");
    let proxy_yaml = std::fs::read(backend_config.join("proxy.yaml")).unwrap();
    let edit = |policy: &str| {
        kube_play::update_files(
            &backend_config,
            &BTreeMap::from([
                ("proxy.yaml".to_string(), proxy_yaml.clone()),
                ("policy.yaml".to_string(), policy.as_bytes().to_vec()),
            ]),
        )
        .unwrap()
    };
    let allowed = |log: &str| log.matches(": 200 hello from backend").count();
    // A broken edit is refused, saying where, and the policy in force stays.
    edit("mode: enforce\nrules:\n  - name: [unclosed\n");
    wait_for_log(
        &container("backend", "ward-proxy"),
        "policy reload failed; keeping the previous policy",
        Duration::from_secs(30),
    );
    let before = allowed(&podman::logs(&container("frontend", "app")));
    wait_until(Duration::from_secs(30), "frontend still allowed", || {
        allowed(&podman::logs(&container("frontend", "app"))) >= before + 2
    });
    // An edit that allows nobody: frontend's next calls are refused by backend's sidecar.
    edit("mode: enforce\nrules: []\n");
    wait_for_log(
        &container("frontend", "app"),
        &format!("403 {{\"error\":\"peer_denied\",\"message\":\"backend.ward-demo.svc:8443 refused {FRONTEND}"),
        Duration::from_secs(60),
    );

    // The demo as teams write it (deploy/kubernetes/demo-inject: apps only, frontend calling
    // http://backend.ward-inject-demo.svc:8080/ itself), through the real ward-inject, with
    // the test network as the mesh range: the interception rules make that call mTLS.
    let subnet = format!("{}/24", Ipv4Addr::from(base - 1));
    let inject_config = tmp.path().join("inject.yaml");
    std::fs::write(
        &inject_config,
        format!(
            "trust_domain: {TD}\nca_url: \"https://ward-ca.ward-system.svc:8443\"\nimages: {{ proxy: ghcr.io/ward/ward-proxy:0.1.0, intercept: ghcr.io/ward/ward-intercept:0.1.0 }}\nmesh_cidrs: [{subnet}]\n"
        ),
    )
    .unwrap();
    let written: String = ["namespace", "backend", "frontend"]
        .iter()
        .map(|f| {
            let path = repo().join(format!("deploy/kubernetes/demo-inject/{f}.yaml"));
            format!("---\n{}", std::fs::read_to_string(path).unwrap())
        })
        .collect();
    let injected = run_with_stdin(
        &ward_e2e::processes::bin("ward-inject"),
        &["file", "-", "--config", inject_config.to_str().unwrap()],
        &written,
    );
    let mut docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&injected).unwrap();
    docs.push(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ward-bundle", "namespace": "ward-inject-demo"},
        "data": {"bundle.pem": bundle},
    }));
    let ca_ip = played.pods[0].ip;
    let inj_prefix = format!("{run}-inj-");
    let inj_ip = move |n: usize| Ipv4Addr::from(base + 20 + n as u32);
    let mut hosts: Vec<(String, Ipv4Addr)> = ward_e2e::kube_api::API_HOSTS
        .iter()
        .map(|h| (h.to_string(), gateway))
        .collect();
    hosts.push(("ward-ca.ward-system.svc".into(), ca_ip));
    let injected_pods = kube_play::transform(
        &docs,
        &Options {
            image_prefix: "ghcr.io/ward/",
            tag: &tag(),
            prefix: &inj_prefix,
            pod_ip: &inj_ip,
            extra_hosts: hosts,
            secrets: BTreeMap::new(),
            token: &token,
            api_ca_pem: api.ca_pem.clone(),
            api_audience: API_ISSUER,
            files: &files,
        },
    )
    .unwrap();
    for pod in &injected_pods.pods {
        play(pod, tmp.path(), &run, &mut cleanup);
    }
    wait_for_log(
        &format!("{inj_prefix}frontend-app"),
        "GET http://backend.ward-inject-demo.svc:8080/: 200 hello from backend to spiffe://example.org/ns/ward-inject-demo/sa/frontend",
        Duration::from_secs(60),
    );
    let inj_backend = &injected_pods.pods[0];
    let (_, metrics) = http_get_at(SocketAddr::from((inj_backend.ip, 9901)), "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "ward_authz_decisions_total{listener=\"port-8080\",decision=\"allow\",rule=\"frontend-reads\"}"
        ) && !l.ends_with(" 0")),
        "backend's injected sidecar decided nothing:\n{metrics}"
    );
    for (pod, uid) in [("backend-ward-proxy", "65533"), ("backend-app", "65532")] {
        let top = podman::ok(&["top", &format!("{inj_prefix}{pod}"), "huser", "capeff"]);
        assert_eq!(
            top.lines()
                .nth(1)
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>(),
            [uid, "none"],
            "{pod}: {top}"
        );
    }

    // The security context the manifests promise, inside the running containers.
    for (pod, c) in [
        ("ward-ca", "ward-ca"),
        ("backend", "ward-proxy"),
        ("backend", "app"),
        ("frontend", "ward-proxy"),
        ("frontend", "app"),
    ] {
        let name = container(pod, c);
        let seen = podman::inspect(
            &name,
            "{{.Config.User}} ro={{.HostConfig.ReadonlyRootfs}} add={{.HostConfig.CapAdd}} eff={{.EffectiveCaps}} {{.HostConfig.SecurityOpt}}",
        );
        assert!(
            seen.starts_with("65532:65532 ro=true add=[] eff=[] ")
                && seen.contains("no-new-privileges"),
            "{name}: {seen}"
        );
        let top = podman::ok(&["top", &name, "huser", "capeff"]);
        let process = top.lines().nth(1).unwrap_or_default();
        assert_eq!(
            process.split_whitespace().collect::<Vec<_>>(),
            ["65532", "none"],
            "{name}: {top}"
        );
    }
    drop(cleanup);
}
