//! What Prometheus and the dashboards see, from the real binaries: `ward-ca serve` with an ops
//! listener and an enrolled `ward-proxy`, scraped over plain HTTP as a scraper would.
//!
//! - the CA's ops listener answers `/healthz`, `/readyz` and `/metrics` without a client
//!   certificate, labels the exposition as OpenMetrics, and reports `ward_ca_ready 1`;
//! - both binaries export `ward_build_info{version,commit}` naming this checkout's commit;
//! - every `ward_*` metric that deploy/monitoring's alert rules and dashboard use exists in
//!   one of the two expositions, so a renamed metric cannot silently blank a panel or disarm
//!   an alert.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ward_e2e::processes::*;

const TD: &str = "example.org";

/// A GET over plain HTTP/1.1: status, head and body.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    sock.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The sample names an exposition can produce, from its `# TYPE` lines: a counter `x` is
/// sampled as `x_total`, a histogram as `x_bucket`/`_sum`/`_count`, an info as `x_info`.
fn sample_names(text: &str, names: &mut BTreeSet<String>) {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
}

/// Every `ward_*` name in a deploy/monitoring file.
fn used_names(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("ward_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(text.len() - start);
        if before_ok {
            used.insert(text[start..end].to_owned());
        }
        i = end;
    }
    used
}

fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn dashboards_and_alerts_use_only_metrics_the_binaries_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (code, _, err) = ward_ca(path, &["init", "--dir", "ca", "--trust-domain", TD]);
    assert_eq!(code, 0, "{err}");
    let (api, ops, admin) = (free_port(), free_port(), free_port());
    std::fs::write(
        path.join("ca.yaml"),
        format!(
            "trust_domain: {TD}\nca_dir: ca\nlisten: \"127.0.0.1:{api}\"\nops: \"127.0.0.1:{ops}\"\n\
             state: state.db\ndns_names: [localhost]\n"
        ),
    )
    .unwrap();
    let _ca = Proc::spawn(
        path,
        "ca",
        &bin("ward-ca"),
        &["serve", "--config", "ca.yaml", "--log-level", "warn"],
    );
    wait_until(Duration::from_secs(15), "the CA's ops listener", || {
        TcpStream::connect(("127.0.0.1", ops)).is_ok()
    });
    assert_eq!(get(ops, "/healthz").0, 200);
    wait_until(Duration::from_secs(15), "the CA to be ready", || {
        get(ops, "/readyz").0 == 200
    });
    let (status, head, ca_metrics) = get(ops, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(ca_metrics.contains("\nward_ca_ready 1\n"), "{ca_metrics}");
    assert_eq!(
        get(ops, "/v1/bundle").0,
        404,
        "the ops listener serves no API"
    );

    let (code, token, err) = ward_ca(
        path,
        &[
            "token",
            "create",
            "--config",
            "ca.yaml",
            "--id",
            &format!("spiffe://{TD}/ns/test/sa/web"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(path.join("web.token"), token).unwrap();
    std::fs::write(path.join("policy.yaml"), "rules: []\n").unwrap();
    std::fs::write(
        path.join("proxy.yaml"),
        format!(
            "trust_domain: {TD}\nidentity:\n  ca: {{ url: \"https://localhost:{api}\", bundle: ca/bundle.pem, token_file: web.token }}\n\
             policy: policy.yaml\ninbound:\n  - {{ name: api, listen: \"127.0.0.1:{}\", forward: \"127.0.0.1:{}\" }}\n\
             admin: \"127.0.0.1:{admin}\"\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let _proxy = Proc::spawn(
        path,
        "proxy",
        &bin("ward-proxy"),
        &["run", "--config", "proxy.yaml"],
    );
    wait_until(Duration::from_secs(20), "the sidecar to be ready", || {
        http_get(admin, "/ready").is_some_and(|(s, _)| s == 200)
    });
    let (status, _, proxy_metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        proxy_metrics
            .contains("ward_identity_renewals_total{kind=\"enroll\",result=\"success\"} 1"),
        "{proxy_metrics}"
    );

    let commit = git_head(Path::new(env!("CARGO_MANIFEST_DIR")));
    for (who, text) in [("ward-ca", &ca_metrics), ("ward-proxy", &proxy_metrics)] {
        let line = text
            .lines()
            .find(|l| l.starts_with("ward_build_info{"))
            .unwrap_or_else(|| panic!("{who}: no ward_build_info"));
        assert!(
            line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
        if let Some(commit) = &commit {
            assert!(
                line.contains(&format!("commit=\"{commit}\"")),
                "{who}: {line}"
            );
        }
    }

    let mut exported = BTreeSet::new();
    sample_names(&ca_metrics, &mut exported);
    sample_names(&proxy_metrics, &mut exported);
    let monitoring = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let mut checked = 0;
    for file in ["ward-alerts.yaml", "ward-dashboard.json"] {
        let text = std::fs::read_to_string(monitoring.join(file)).unwrap();
        let used = used_names(&text);
        assert!(used.len() > 5, "{file}: too few metrics found ({used:?})");
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics no binary exports: {missing:?}"
        );
        checked += used.len();
    }
    assert!(checked > 20);
}

#[test]
fn metric_names_are_found_in_text() {
    let used = used_names("rate(ward_bytes_total{x=\"ward_not\"}[5m]) + xward_no + ward_ca_ready");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["ward_bytes_total", "ward_ca_ready", "ward_not"]
    );
}
