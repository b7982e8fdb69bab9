//! The real `ward-proxy` binary: signals (SIGHUP reloads, SIGTERM drains and exits 0), the
//! admin endpoints seen with curl, JSON access logs, and the `check` and `policy test` commands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ward-proxy");

use ward_e2e::kit::free_port;

fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl must be installed (make test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Starts `ward-proxy run` (JSON logs) on fixed free ports and waits for /ready.
fn start(pki: &Pki, app: SocketAddr, grace: &str) -> (Child, SocketAddr, String) {
    let (cert, key) = pki.write("backend", &pki.ca.issue(BACKEND));
    let (api, admin) = (free_port(), free_port());
    pki.file("policy.yaml", ALLOW_FRONTEND);
    let config = pki.file(
        "proxy.yaml",
        &format!(
            "trust_domain: example.org\nidentity:\n  files: {{ cert: {}, key: {}, bundle: {} }}\n\
             policy: policy.yaml\ninbound:\n  - {{ name: api, listen: \"127.0.0.1:{api}\", forward: \"{app}\" }}\n\
             admin: \"127.0.0.1:{admin}\"\nlimits: {{ shutdown_grace: {grace} }}\nreload_interval: 1h\n",
            cert.display(), key.display(), pki.bundle().display()
        ),
    );
    let child = Command::new(BIN)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let admin_url = format!("http://127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&format!("{admin_url}/ready")).0 != 200 {
        assert!(Instant::now() < deadline, "proxy never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, SocketAddr::from(([127, 0, 0, 1], api)), admin_url)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_drains_then_exits_zero() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let (mut child, api, admin) = start(&pki, app.addr, "30s");

    let (code, body) = curl(&format!("{admin}/identity"));
    assert_eq!(code, 200);
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(id["spiffe_id"], BACKEND);
    assert_eq!(curl(&format!("{admin}/live")).0, 200);
    let policy: serde_json::Value =
        serde_json::from_str(&curl(&format!("{admin}/policy")).1).unwrap();
    assert_eq!(policy["rules"][0]["name"], "web-to-api");
    let first_version = policy["version"].as_str().unwrap().to_owned();

    // SIGHUP picks up an edited policy.
    pki.file(
        "policy.yaml",
        &format!("{ALLOW_FRONTEND}  - name: extra\n    from: [\"{INTRUDER}\"]\n"),
    );
    signal(&child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p: serde_json::Value =
            serde_json::from_str(&curl(&format!("{admin}/policy")).1).unwrap();
        if p["version"].as_str() != Some(&first_version) {
            assert_eq!(p["rules"][1]["name"], "extra");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the policy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // An open connection survives SIGTERM and keeps working during the grace period.
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut open = connect(&client, api).await.unwrap();
    assert_eq!(round_trip(&mut open, b"before").await.unwrap(), b"before");
    signal(&child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&format!("{admin}/ready")).0 != 503 {
        assert!(Instant::now() < deadline, "/ready never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "still accepting while draining"
    );
    assert_eq!(
        round_trip(&mut open, b"draining").await.unwrap(),
        b"draining"
    );
    assert_eq!(
        wait_exit(&mut child, Duration::from_millis(300)),
        None,
        "exited before the connection finished"
    );
    drop(open);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));

    // One JSON access-log event per connection, with the fields operators need.
    let logs: Vec<serde_json::Value> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let access: Vec<_> = logs
        .iter()
        .filter(|l| l["target"] == "ward::access")
        .collect();
    assert_eq!(access.len(), 1, "{logs:#?}");
    let event = access[0];
    assert_eq!(event["peer"], FRONTEND);
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["rule"], "web-to-api");
    assert_eq!(event["bytes_in"], 14);
    assert_eq!(event["listener"], "api");
    assert_eq!(event["key_exchange"], "X25519MLKEM768");
    let all = logs.iter().map(ToString::to_string).collect::<String>();
    assert!(!all.contains("PRIVATE KEY"), "key material in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_that_outlive_the_grace_period() {
    let pki = Pki::new();
    let app = EchoApp::start().await;
    let (mut child, api, _admin) = start(&pki, app.addr, "300ms");
    let client = pki.client(pki.ca.issue(FRONTEND), BACKEND);
    let mut open = connect(&client, api).await.unwrap();
    round_trip(&mut open, b"x").await.unwrap();
    signal(&child, "-TERM");
    assert!(closed_within(&mut open, Duration::from_secs(10)).await);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(0));
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_file_line_and_column() {
    let pki = Pki::new();
    pki.file("policy.yaml", ALLOW_FRONTEND);
    let base = "trust_domain: example.org\nidentity:\n  files: { cert: a.pem, key: a.key, bundle: b.pem }\npolicy: policy.yaml\ninbound:\n  - { name: api, listen: \"127.0.0.1:8443\", forward: \"127.0.0.1:8080\" }\n";
    let good = pki.file("good.yaml", base);
    let (code, out, err) = run(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
    let replicas = base.replace(
        "files: { cert: a.pem, key: a.key, bundle: b.pem }",
        "ca: { url: [\"https://ca-0:8443\", \"https://ca-1:8443\"], bundle: b.pem, token_file: t }",
    );
    let replicas = pki.file("replicas.yaml", &replicas);
    let (code, _, err) = run(&["check", "--config", replicas.to_str().unwrap()]);
    assert_eq!(code, 0, "several CA URLs: {err}");

    let cases = [
        (format!("{base}admn: \"127.0.0.1:1\"\n"), "good2.yaml:7:1:", "unknown field `admn`"),
        (base.replace("example.org", "Example.org"), "bad.yaml:1:", "lower-case"),
        (base.replace("127.0.0.1:8443", "localhost"), "bad.yaml:6:", "IP:port"),
        (format!("{base}outbound:\n  - {{ name: out, listen: \"0.0.0.0:9001\", upstream: \"x:1\", server_id: \"spiffe://example.org/x\" }}\n"), "bad.yaml:8:", "loopback"),
        (format!("{base}outbound:\n  - {{ name: api, listen: \"127.0.0.1:9001\", upstream: \"x:1\", server_id: \"spiffe://example.org/x\" }}\n"), "bad.yaml:8:", "already used"),
        (format!("{base}limits: {{ handshake_timeout: 10 }}\n"), "bad.yaml:7:", "invalid duration"),
        (base.replace("forward: \"127.0.0.1:8080\" }", "forward: \"127.0.0.1:8080\", headers_with_underscores: drop }"), "bad.yaml:6:", "protocol: http listeners only"),
        (base.replace("forward: \"127.0.0.1:8080\" }", "forward: \"127.0.0.1:8080\", protocol: http, headers_with_underscores: keep }"), "bad.yaml:6:", "unknown variant `keep`"),
        (base.replace("files: { cert: a.pem, key: a.key, bundle: b.pem }", "ca: { url: [\"https://ca-0:8443\", \"http://ca-1:8443\"], bundle: b.pem, token_file: t }"), "bad.yaml:3:", "\"http://ca-1:8443\" must be https://host:port"),
        (base.replace("files: { cert: a.pem, key: a.key, bundle: b.pem }", "ca: { url: [], bundle: b.pem, token_file: t }"), "bad.yaml:3:", "give at least one https:// URL"),
        // The Workload API: never with the sidecar's own key (files), never open to all.
        (format!("{base}workload_api: {{ socket: w.sock, allowed_uids: [1000] }}\n"), "bad.yaml:7:", "needs `identity: ca`"),
        (format!("{}workload_api: {{ socket: w.sock }}\n", base.replace("files: { cert: a.pem, key: a.key, bundle: b.pem }", "ca: { url: \"https://ca:8443\", bundle: b.pem, token_file: t }")), "bad.yaml:7:", "at least one of allowed_uids or allowed_gids"),
        (format!("{}workload_api: {{ socket: w.sock, allowed_users: [1] }}\n", base.replace("files: { cert: a.pem, key: a.key, bundle: b.pem }", "ca: { url: \"https://ca:8443\", bundle: b.pem, token_file: t }")), "bad.yaml:7:", "unknown field `allowed_users`"),
        (format!("{}workload_api: {{ socket: /{}, allowed_uids: [1] }}\n", base.replace("files: { cert: a.pem, key: a.key, bundle: b.pem }", "ca: { url: \"https://ca:8443\", bundle: b.pem, token_file: t }"), "s".repeat(120)), "bad.yaml:7:", "at most 107"),
        // Transparent listeners (interception): one way to say where a connection goes.
        (base.replace("forward: \"127.0.0.1:8080\" }", "forward: \"127.0.0.1:8080\", transparent: true }"), "bad.yaml:6:", "not both"),
        (format!("{base}outbound:\n  - {{ name: m, listen: \"127.0.0.1:15001\", upstream: \"x:1\", transparent: {{}} }}\n"), "bad.yaml:8:", "not both"),
        (format!("{base}outbound:\n  - {{ name: m, listen: \"127.0.0.1:15001\", transparent: {{ passthrough: [{{ cidr: 10.0.0.1/8 }}] }} }}\n"), "bad.yaml:8:", "host bits set"),
        (format!("{base}outbound:\n  - {{ name: m, protocol: http, listen: \"127.0.0.1:15001\", transparent: {{}} }}\n"), "bad.yaml:8:", "protocol: tcp for now"),
    ];
    for (text, location, want) in cases {
        let name = if want.contains("admn") {
            "good2.yaml"
        } else {
            "bad.yaml"
        };
        let path = pki.file(name, &text);
        let (code, _, err) = run(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{text}\n{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(location) && err.contains(want),
            "want {location} {want:?} in {err}"
        );
    }
    // A policy error is reported in the policy file.
    pki.file("policy.yaml", "rules:\n  - name: a\n    from: [\"spiffe://example.org/a\"]\n    to: { listeners: [ap1] }\n");
    let (code, _, err) = run(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("policy.yaml:4:") && err.contains("unknown listener \"ap1\""),
        "{err}"
    );
}

#[test]
fn policy_test_prints_the_deciding_rule() {
    let pki = Pki::new();
    let policy = pki.file(
        "p.yaml",
        &format!("{ALLOW_FRONTEND}  - name: block-legacy\n    action: deny\n    from: [\"spiffe://example.org/ns/legacy/*\"]\n"),
    );
    let p = policy.to_str().unwrap();
    let t = |from: &str, listener: &str| {
        run(&[
            "policy",
            "test",
            "--policy",
            p,
            "--from",
            from,
            "--listener",
            listener,
        ])
    };
    assert_eq!(
        t(FRONTEND, "api"),
        (0, "allow (rule: web-to-api)\n".into(), String::new())
    );
    assert_eq!(
        t(INTRUDER, "api"),
        (1, "deny (rule: default-deny)\n".into(), String::new())
    );
    assert_eq!(
        t("spiffe://example.org/ns/legacy/x", "api").1,
        "deny (rule: block-legacy)\n"
    );
    // Could not decide (an invalid ID, a policy that does not load): 2, never 1 (deny).
    let (code, _, err) = t("spiffe://example.org/a b", "api");
    assert_eq!(code, 2);
    assert!(err.starts_with("ward-proxy: error: --from"), "{err}");
    let broken = pki.file("broken.yaml", "rules:\n  - name: x\n    from: []\n");
    let (code, _, err) = run(&[
        "policy",
        "test",
        "--policy",
        broken.to_str().unwrap(),
        "--from",
        FRONTEND,
        "--listener",
        "api",
    ]);
    assert_eq!(code, 2, "a broken policy is not a denial: {err}");
    let audit = pki.file("audit.yaml", &format!("mode: audit\n{ALLOW_FRONTEND}"));
    let (code, out, _) = run(&[
        "policy",
        "test",
        "--policy",
        audit.to_str().unwrap(),
        "--from",
        INTRUDER,
        "--listener",
        "api",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("deny (rule: default-deny); mode is audit"),
        "{out}"
    );
}

#[test]
fn policy_test_decides_http_requests_by_method_and_normalized_path() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let config = docs.join("examples/proxy.yaml");
    let pki = Pki::new();
    let policy = pki.file(
        "p.yaml",
        "rules:\n  - name: reads\n    from: [\"spiffe://example.org/ns/web/*\"]\n    to: { listeners: [web], methods: [GET], paths: [\"/v1/*\"] }\n",
    );
    let t = |listener: &str, extra: &[&str]| {
        let mut args = vec!["policy", "test", "--policy", policy.to_str().unwrap()];
        args.extend(["--from", FRONTEND, "--listener", listener]);
        args.extend(["--config", config.to_str().unwrap()]);
        args.extend(extra);
        run(&args)
    };
    assert_eq!(
        t("web", &["--method", "GET", "--path", "/v1/a"]).1,
        "allow (rule: reads)\n"
    );
    let (code, out, _) = t("web", &["--method", "GET", "--path", "/v1/../admin"]);
    assert_eq!((code, out.as_str()), (1, "deny (rule: default-deny)\n"));
    assert_eq!(t("web", &["--method", "POST", "--path", "/v1/a"]).0, 1);
    let (code, _, err) = t("web", &["--method", "GET", "--path", "/v1/%2F"]);
    assert_eq!(code, 2);
    assert!(err.contains("--path") && err.contains("400"), "{err}");
    let (code, out, _) = t("web", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("pass --method and --path"), "{out}");
    let (code, _, err) = t("api", &["--method", "GET", "--path", "/"]);
    assert_eq!(code, 2);
    assert!(err.contains("protocol tcp"), "{err}");
    let (code, _, err) = t("web", &["--method", "GET"]);
    assert_eq!(code, 2, "--method needs --path: {err}");
}

/// `policy test` never turns what the sidecar would refuse, or what it cannot know, into a
/// verdict: exit 2, never `allow` or `deny`.
#[test]
fn policy_test_says_it_cannot_tell_rather_than_guess() {
    let pki = Pki::new();
    let policy = pki.file(
        "p.yaml",
        "rules:\n  - name: reads\n    from: [\"spiffe://example.org/ns/web/*\"]\n    to: { listeners: [web], methods: [GET], paths: [\"/v1/*\"] }\n  - name: raw\n    from: [\"spiffe://example.org/ns/web/*\"]\n    to: { listeners: [db] }\n",
    );
    let t = |extra: &[&str]| {
        let mut args = vec!["policy", "test", "--policy", policy.to_str().unwrap()];
        args.extend(["--from", FRONTEND]);
        args.extend(extra);
        run(&args)
    };
    // A listener no rule names, without the config: the sidecar may not have it at all.
    let (code, out, err) = t(&["--listener", "nosuch"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("--config"), "{err}");
    // A method the sidecar answers 400 bad_method for.
    let (code, out, err) = t(&["--listener", "web", "--method", "delete", "--path", "/v1/a"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("bad_method"), "{err}");
    // A request on a listener the policy does not show to speak HTTP.
    let (code, out, err) = t(&["--listener", "db", "--method", "GET", "--path", "/"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("speaks HTTP"), "{err}");
    // What it can tell, it still decides.
    assert_eq!(t(&["--listener", "db"]).0, 0);
    let (code, out, _) = t(&["--listener", "web", "--method", "GET", "--path", "/v1/a"]);
    assert_eq!((code, out.as_str()), (0, "allow (rule: reads)\n"));
}

/// Every config and policy shown in the docs is accepted by `ward-proxy check`.
#[test]
fn docs_examples_pass_check() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let example = docs.join("examples/proxy.yaml");
    let (code, out, err) = run(&["check", "--config", example.to_str().unwrap()]);
    assert_eq!(code, 0, "{}: {err}", example.display());
    assert!(out.contains("3 rules"), "{out}");

    let blocks = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(docs.join(file)).unwrap();
        text.split("```yaml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap().to_owned())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let configs = blocks("proxy.md");
    assert!(!configs.is_empty());
    for block in configs {
        write("policy.yaml", "rules: []\n");
        let config = write("proxy.yaml", &block);
        let (code, _, err) = run(&["check", "--config", config.to_str().unwrap()]);
        assert_eq!(code, 0, "docs/proxy.md block fails check: {err}\n{block}");
    }
    let policies = blocks("policy.md");
    assert!(policies.len() >= 4);
    let example_config = std::fs::read_to_string(&example).unwrap();
    for block in policies {
        write("policy.yaml", &block);
        let config = write("proxy.yaml", &example_config);
        let (code, _, err) = run(&["check", "--config", config.to_str().unwrap()]);
        assert_eq!(code, 0, "docs/policy.md block fails check: {err}\n{block}");
    }
}

/// Rules may name identities of federated trust domains; `policy test` decides them like any
/// other, and `check` accepts a foreign outbound `server_id` with `identity: ca` only.
#[test]
fn foreign_identities_in_policy_and_server_id() {
    let pki = Pki::new();
    let policy = pki.file(
        "p.yaml",
        "rules:\n  - name: partner\n    from: [\"spiffe://b.example/ns/pay/*\"]\n    to: { listeners: [api] }\n",
    );
    let p = policy.to_str().unwrap();
    let t = |from: &str| {
        run(&[
            "policy",
            "test",
            "--policy",
            p,
            "--from",
            from,
            "--listener",
            "api",
        ])
    };
    let (code, out, _) = t("spiffe://b.example/ns/pay/sa/billing");
    assert_eq!(code, 0);
    assert!(out.contains("allow") && out.contains("partner"), "{out}");
    let (code, out, _) = t("spiffe://c.example/ns/pay/sa/billing");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("deny"), "{out}");

    let listeners = "inbound:\n  - { name: api, listen: \"127.0.0.1:8443\", forward: \"127.0.0.1:8080\" }\noutbound:\n  - { name: b, listen: \"127.0.0.1:9001\", upstream: \"b:8443\", server_id: \"spiffe://b.example/ns/api/sa/backend\" }\n";
    let with = |identity: &str| {
        let path = pki.file(
            "fed.yaml",
            &format!(
                "trust_domain: example.org\nidentity:\n  {identity}\npolicy: {p}\n{listeners}"
            ),
        );
        run(&["check", "--config", path.to_str().unwrap()])
    };
    let (code, _, err) = with("ca: { url: \"https://ca:8443\", bundle: b.pem, token_file: t }");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = with("files: { cert: a.pem, key: a.key, bundle: b.pem }");
    assert_eq!(code, 1);
    assert!(
        err.contains("only one trusted with identity: files"),
        "{err}"
    );
}
