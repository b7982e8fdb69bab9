//! Transparent interception with no container: hosts are network namespaces on a bridge
//! (`ward_e2e::netns`), each with its sidecar running as its own uid and the rules
//! `ward-intercept apply` installs, and the apps are programs nobody here wrote (`curl`,
//! Python's `http.server`) that know nothing of ward.
//!
//! - frontend's `curl http://<backend>:8080/` arrives at backend's app through both sidecars,
//!   as mTLS with frontend's identity (backend's policy allowed frontend by rule), and
//!   backend's HTTP listener still decides per request (`DELETE` refused);
//! - intruder, same command, is refused by backend's policy and never reaches the app;
//! - a mesh address with no sidecar gets no plaintext: frontend's sidecar fails the handshake;
//!   listed as passthrough, the same host is reached in plaintext, and counted;
//! - the same over IPv6 (`fd77::/64`), through the sidecar's `[::1]` outbound listener and its
//!   dual-stack inbound one;
//! - a skipped port bypasses both sidecars; a connection straight to the outbound listener is
//!   refused, and the sidecar's own connections are never redirected back to itself.
//!
//! Needs root (namespaces, nftables); as another user it prints "skipped: needs root".

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::Duration;

use support::{BACKEND, FRONTEND, INTRUDER};
use ward_e2e::metrics::must;
use ward_e2e::netns::Lan;
use ward_e2e::processes::bin;
use ward_e2e::TestCa;

/// The sidecars' uid: not the apps' (root here), so the rules can tell them apart.
const PROXY_UID: u32 = 65533;

#[allow(clippy::print_stdout)] // said on the test's output: a run as a user shows what it skipped
fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        println!("skipped: needs root (network namespaces and nftables; CI runs as root)");
    }
    root
}

/// Writes `name`'s certificate, key and bundle into `dir` for the sidecar's uid.
fn identity(ca: &TestCa, dir: &Path, name: &str, id: &str) {
    let m = ca.issue(id);
    let pem = |der: &[u8], tag: &str| pem::encode(&pem::Pem::new(tag, der.to_vec()));
    let chain: String = m.chain.iter().map(|c| pem(c, "CERTIFICATE")).collect();
    let write = |file: &str, text: &str, mode| {
        let path = dir.join(file);
        ward_tls::files::write_atomic(&path, text.as_bytes(), mode).unwrap();
        std::os::unix::fs::chown(&path, Some(PROXY_UID), Some(PROXY_UID)).unwrap();
    };
    write(&format!("{name}.pem"), &chain, 0o644);
    write(
        &format!("{name}.key"),
        &pem(m.key.secret_der(), "PRIVATE KEY"),
        0o600,
    );
}

fn metrics(lan: &Lan, ns: &str) -> String {
    let out = lan.run(
        ns,
        None,
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "http://127.0.0.1:9901/metrics",
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(lan: &Lan, ns: &str, url: &str) -> (bool, String) {
    let out = lan.run(
        ns,
        None,
        &[
            "curl",
            "-g",
            "-s",
            "-S",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn an_unmodified_app_is_intercepted_and_authorized_across_hosts() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ca = TestCa::new("example.org");
    std::fs::copy(ca.path().join("bundle.pem"), dir.join("bundle.pem")).unwrap();

    let mut lan = Lan::new(&format!("wi{}", std::process::id()), "10.77.0");
    let (front, back, evil, plain) = (
        lan.host("front", 1),
        lan.host("back", 2),
        lan.host("evil", 3),
        lan.host("plain", 4),
    );
    let intercept = bin("ward-intercept");
    let apply = |ns: &str, extra: &[&str]| {
        let mut args = vec![
            intercept.to_str().unwrap(),
            "apply",
            "--proxy-uid",
            "65533",
            "--mesh-cidr",
            "10.77.0.0/24,fd77::/64",
            "--skip-port",
            "9999",
        ];
        args.extend_from_slice(extra);
        let out = lan.run(ns, None, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apply(&front, &[]);
    apply(&evil, &[]);
    apply(&back, &["--app-port", "8080"]);

    // The apps: Python's http.server on backend's 8080 and 9999 (skipped), and on the
    // sidecar-less host's 8080 (in the mesh) and 8081 (passthrough).
    for (ns, port) in [
        (&back, "8080"),
        (&back, "9999"),
        (&plain, "8080"),
        (&plain, "8081"),
    ] {
        let http = [
            "python3",
            "-m",
            "http.server",
            "--bind",
            "0.0.0.0",
            "--directory",
            "/",
            port,
        ];
        lan.spawn(ns, None, &http, &dir.join(format!("{ns}-{port}.log")));
    }

    let proxy = bin("ward-proxy");
    let policy_back = format!("rules:\n  - name: frontend-in\n    from: [\"{FRONTEND}\"]\n    to: {{ listeners: [app], methods: [GET] }}\n");
    std::fs::write(dir.join("back-policy.yaml"), policy_back).unwrap();
    std::fs::write(dir.join("none-policy.yaml"), "rules: []\n").unwrap();
    // IPv6 connections are redirected to ::1, so the outbound side listens there too.
    let outbound = "outbound:\n  - name: mesh\n    listen: \"127.0.0.1:15001\"\n    transparent:\n      passthrough: [{ cidr: 10.77.0.4/32, port: 8081 }]\n  - { name: mesh6, listen: \"[::1]:15001\", transparent: {} }\n";
    let inbound =
        "inbound:\n  - { name: app, protocol: http, transparent: true, listen: \"[::]:15006\" }\n";
    for (ns, name, id, policy, listeners) in [
        (&front, "front", FRONTEND, "none-policy.yaml", outbound),
        (&evil, "evil", INTRUDER, "none-policy.yaml", outbound),
        (&back, "back", BACKEND, "back-policy.yaml", inbound),
    ] {
        identity(&ca, dir, name, id);
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "trust_domain: example.org\nidentity:\n  files: {{ cert: {name}.pem, key: {name}.key, bundle: bundle.pem }}\npolicy: {policy}\n{listeners}admin: \"127.0.0.1:9901\"\n"
            ),
        )
        .unwrap();
        lan.spawn(
            ns,
            Some(PROXY_UID),
            &[
                proxy.to_str().unwrap(),
                "run",
                "--config",
                config.to_str().unwrap(),
            ],
            &dir.join(format!("{name}-proxy.log")),
        );
    }
    for ns in [&front, &evil, &back] {
        ward_e2e::kit::wait_until(Duration::from_secs(20), &format!("{ns}'s sidecar"), || {
            metrics(&lan, ns).contains("ward_connections_opened")
                || lan
                    .run(ns, None, &["curl", "-sf", "http://127.0.0.1:9901/ready"])
                    .status
                    .success()
        });
    }
    for (ns, port) in [(&back, 8080), (&plain, 8080), (&plain, 8081)] {
        ward_e2e::kit::wait_until(Duration::from_secs(20), "the apps", || {
            lan.run(
                ns,
                None,
                &["curl", "-s", &format!("http://127.0.0.1:{port}/")],
            )
            .status
            .success()
        });
    }

    // frontend -> backend: through both sidecars, frontend's ID decided by backend's rule.
    let (ok, said) = curl(&lan, &front, "http://10.77.0.2:8080/");
    assert!(ok && said == "200", "frontend's call: {said}");
    let back_metrics = metrics(&lan, &back);
    assert_eq!(
        must(
            &back_metrics,
            "ward_authz_decisions_total{listener=\"app\",decision=\"allow\",rule=\"frontend-in\"}"
        ),
        1.0,
        "{back_metrics}"
    );
    // backend's listener is HTTP: its rules decide request by request.
    let out = lan.run(
        &front,
        None,
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "-X",
            "DELETE",
            "http://10.77.0.2:8080/",
        ],
    );
    let refused = String::from_utf8_lossy(&out.stdout);
    assert!(
        refused.contains("\"error\":\"forbidden\""),
        "DELETE: {refused}"
    );
    let front_metrics = metrics(&lan, &front);
    assert_eq!(
        must(
            &front_metrics,
            "ward_connections_opened_total{listener=\"mesh\",direction=\"outbound\"}"
        ),
        2.0,
        "one connection per call: the sidecar's own were not redirected to itself\n{front_metrics}"
    );

    // The same over IPv6: the rules cover both families, one inbound listener takes both.
    let (ok, said) = curl(&lan, &front, "http://[fd77::2]:8080/");
    assert!(ok && said == "200", "frontend's call over IPv6: {said}");
    assert_eq!(
        must(
            &metrics(&lan, &front),
            "ward_connections_opened_total{listener=\"mesh6\",direction=\"outbound\"}"
        ),
        1.0
    );

    // intruder: refused by backend's policy, its request never reaching the app.
    let (ok, said) = curl(&lan, &evil, "http://10.77.0.2:8080/");
    assert!(!ok || said != "200", "intruder got through: {said}");
    let back_metrics = metrics(&lan, &back);
    let denied = back_metrics
        .lines()
        .find(|l| l.starts_with("ward_authz_decisions_total{listener=\"app\",decision=\"deny\""))
        .unwrap_or_else(|| panic!("backend counted no denial:\n{back_metrics}"));
    assert!(denied.ends_with(" 1"), "{denied}");
    let served = std::fs::read_to_string(dir.join(format!("{back}-8080.log"))).unwrap();
    assert_eq!(
        served.matches("\"GET / HTTP/1.1\" 200").count(),
        3,
        "the app saw frontend's two calls (IPv4, IPv6) and its own readiness check only:\n{served}"
    );

    // A mesh address with no sidecar: no plaintext, the handshake fails.
    let (ok, said) = curl(&lan, &front, "http://10.77.0.4:8080/");
    assert!(
        !ok || said != "200",
        "plaintext to a sidecar-less host: {said}"
    );
    let front_metrics = metrics(&lan, &front);
    assert!(
        front_metrics.lines().any(|l| l
            .starts_with("ward_handshake_failures_total{listener=\"mesh\",direction=\"outbound\"")
            && !l.ends_with(" 0")),
        "{front_metrics}"
    );
    let plain_log = std::fs::read_to_string(dir.join(format!("{plain}-8080.log"))).unwrap();
    assert_eq!(
        plain_log.matches("\"GET / HTTP/1.1\" 200").count(),
        1,
        "only the readiness check was served in plaintext:\n{plain_log}"
    );

    // The same host's passthrough port: plaintext on purpose, counted.
    let (ok, said) = curl(&lan, &front, "http://10.77.0.4:8081/");
    assert!(ok && said == "200", "passthrough: {said}");
    assert_eq!(
        must(
            &metrics(&lan, &front),
            "ward_passthrough_connections_total{listener=\"mesh\",direction=\"outbound\"}"
        ),
        1.0
    );

    // A skipped port bypasses both sidecars.
    let (ok, said) = curl(&lan, &front, "http://10.77.0.2:9999/");
    assert!(ok && said == "200", "skipped port: {said}");

    // Straight to the outbound listener: nothing to forward to, refused.
    let _ = curl(&lan, &front, "http://127.0.0.1:15001/");
    let front_metrics = metrics(&lan, &front);
    assert_eq!(
        must(&front_metrics, "ward_connections_closed_total{listener=\"mesh\",direction=\"outbound\",reason=\"no_original_destination\"}"),
        1.0,
        "{front_metrics}"
    );
}
