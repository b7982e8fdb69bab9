//! HTTP-mode requests that would mean something else to the app than what was authorized,
//! sent with curl over HTTP/1.1 and HTTP/2: path parameters (`..;` for Tomcat and Spring),
//! reserved characters that arrive percent-encoded (forwarded encoded, never decoded),
//! methods in non-canonical case against allow and deny rules, and header names with `_`
//! (folded into `-` by CGI/WSGI servers), including every spelling of a spoofed XFCC.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use support::http::*;
use support::*;

const POLICY: &str = r#"rules:
  - name: public
    from: ["spiffe://example.org/ns/web/sa/frontend"]
    to: { listeners: [api], methods: [GET], paths: ["/public/*"] }
  - name: any-method
    from: ["spiffe://example.org/ns/web/sa/frontend"]
    to: { listeners: [api], paths: ["/any/*"] }
  - name: no-deletes
    action: deny
    from: ["spiffe://example.org/*"]
    to: { listeners: [api], methods: [DELETE] }
"#;

const VERSIONS: [&str; 2] = ["--http1.1", "--http2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_are_refused_and_encoded_reserved_characters_stay_encoded() {
    let s = setup_with(POLICY, "").await;
    for version in VERSIONS {
        for sneaky in [
            "/public/..;/admin",
            "/public/..;name=value/admin",
            "/public/%2e%2e;/admin",
            "/public/.%2e;jsessionid=1/admin",
            "/public/..%3B/admin",
            "/public/..%3b/admin",
            "/public/%2e%2e%3b/admin",
            "/public/a;b",
        ] {
            let (_, status, body) = curl(&s, "frontend", s.port, &[version], sneaky);
            assert_eq!(status, 400, "{version} {sneaky}: {body}");
            assert_eq!(json(&body)["error"], "bad_path", "{sneaky}");
            assert!(!body.contains("\"target\""), "{sneaky} reached the app");
        }
        for (sent, forwarded) in [
            ("/public/a%3Bb", "/public/a%3Bb"),
            ("/public/a%3bb", "/public/a%3Bb"),
            ("/public/%2e%2e/public/x%3By", "/public/x%3By"),
            ("/public/a%25b%3F%23", "/public/a%25b%3F%23"),
        ] {
            let (_, status, body) = curl(&s, "frontend", s.port, &[version], sent);
            assert_eq!(status, 200, "{version} {sent}: {body}");
            assert_eq!(json(&body)["target"], forwarded, "{version} {sent}");
        }
    }
    s.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_in_another_case_are_refused_not_matched() {
    let s = setup_with(POLICY, "").await;
    for version in VERSIONS {
        // A deny rule on DELETE is not dodged by spelling it in lower or mixed case.
        for method in ["delete", "Delete", "dELETE"] {
            let (_, status, body) =
                curl(&s, "frontend", s.port, &[version, "-X", method], "/any/1");
            assert_eq!(status, 400, "{version} {method}: {body}");
            assert_eq!(json(&body)["error"], "bad_method");
            assert!(!body.contains("\"target\""), "{method} reached the app");
        }
        let (_, status, body) = curl(&s, "frontend", s.port, &[version, "-X", "DELETE"], "/any/1");
        assert_eq!(
            (status, json(&body)["rule"].as_str()),
            (403, Some("no-deletes"))
        );
        // Nor is an allow rule on GET widened (or an app confused) by `get`.
        for method in ["get", "Get"] {
            let (_, status, body) = curl(
                &s,
                "frontend",
                s.port,
                &[version, "-X", method],
                "/public/x",
            );
            assert_eq!(status, 400, "{version} {method}: {body}");
        }
        let (_, status, body) = curl(&s, "frontend", s.port, &[version], "/public/x");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["method"], "GET");
        let (_, status, body) = curl(&s, "frontend", s.port, &[version, "-X", "PATCH"], "/any/1");
        assert_eq!(
            (status, json(&body)["method"].as_str()),
            (200, Some("PATCH"))
        );
    }
    s.proxy.shutdown().await;
}

const SPOOFS: [&str; 5] = [
    "x_forwarded_client_cert",
    "X_Forwarded_Client_Cert",
    "x-forwarded_client-cert",
    "x_forwarded-client_cert",
    "X-FORWARDED_CLIENT_CERT",
];

fn spoofed(extra: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for name in SPOOFS {
        args.push("-H".to_owned());
        args.push(format!(
            "{name}: By=x;URI=spiffe://example.org/ns/ops/sa/admin"
        ));
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn header_names(body: &str) -> Vec<String> {
    json(body)["header_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_with_underscores_are_dropped_by_default_and_xfcc_spoofs_always() {
    let s = setup_with(POLICY, "").await;
    for version in VERSIONS {
        let args = spoofed(&[version, "-H", "x_custom: 1", "-H", "x-fine: 2"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, status, body) = curl(&s, "frontend", s.port, &args, "/public/x");
        assert_eq!(status, 200, "{version}: {body}");
        let names = header_names(&body);
        assert!(
            names.iter().all(|n| !n.contains('_')),
            "{version}: {names:?}"
        );
        assert!(names.contains(&"x-fine".to_owned()), "{names:?}");
        let xfcc = json(&body)["xfcc"].as_str().unwrap().to_owned();
        assert!(
            xfcc.starts_with(&format!("By={BACKEND};"))
                && xfcc.ends_with(&format!("URI={FRONTEND}")),
            "{version}: exactly the sidecar's XFCC: {xfcc}"
        );
    }
    s.proxy.shutdown().await;

    // `reject`: 400, nothing reaches the app.
    let s = setup_with(POLICY, ", headers_with_underscores: reject").await;
    for version in VERSIONS {
        let (_, status, body) = curl(
            &s,
            "frontend",
            s.port,
            &[version, "-H", "x_custom: 1"],
            "/public/x",
        );
        assert_eq!(status, 400, "{version}: {body}");
        assert_eq!(json(&body)["error"], "bad_header");
    }
    let (_, status, _) = curl(&s, "frontend", s.port, &["-H", "x-fine: 1"], "/public/x");
    assert_eq!(status, 200);
    s.proxy.shutdown().await;

    // `allow`: other underscore headers pass, an XFCC spelled with them still does not.
    let s = setup_with(POLICY, ", headers_with_underscores: allow").await;
    for version in VERSIONS {
        let args = spoofed(&[version, "-H", "x_custom: 1"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, status, body) = curl(&s, "frontend", s.port, &args, "/public/x");
        assert_eq!(status, 200, "{version}: {body}");
        let names = header_names(&body);
        assert!(names.contains(&"x_custom".to_owned()), "{names:?}");
        assert_eq!(
            names
                .iter()
                .filter(|n| n.replace('_', "-") == "x-forwarded-client-cert")
                .count(),
            1,
            "{version}: only the sidecar's XFCC: {names:?}"
        );
        assert!(json(&body)["xfcc"].as_str().unwrap().starts_with("By="));
        assert!(!json(&body)["xfcc"].as_str().unwrap().contains("ns/ops"));
    }
    s.proxy.shutdown().await;
}

/// Every spelling of a header about the caller that an app may trust.
const CALLER_HEADERS: [&str; 13] = [
    "X_Forwarded_For: 198.51.100.7",
    "x_forwarded_proto: http",
    "X_Forwarded-Host: evil.example",
    "Forwarded: for=198.51.100.7;proto=http",
    "forwarded_: x",
    "X-Real-IP: 198.51.100.7",
    "X_Real_Ip: 198.51.100.7",
    "True-Client-IP: 198.51.100.7",
    "true_client_ip: 198.51.100.7",
    "X-Client-IP: 198.51.100.7",
    "X_CLIENT_IP: 198.51.100.7",
    "X-Forwarded-Host: evil.example",
    "x_forwarded_for: 198.51.100.8",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_about_the_caller_reach_the_app_only_as_the_sidecar_set_them() {
    for extra in ["", ", headers_with_underscores: allow"] {
        let s = setup_with(POLICY, extra).await;
        for version in VERSIONS {
            let mut args = vec![version];
            for h in CALLER_HEADERS {
                args.extend(["-H", h]);
            }
            args.extend(["-H", "x_custom: 1"]);
            let (_, status, body) = curl(&s, "frontend", s.port, &args, "/public/x");
            assert_eq!(status, 200, "{extra} {version}: {body}");
            let names = header_names(&body);
            let folded: Vec<String> = names.iter().map(|n| n.replace('_', "-")).collect();
            for claim in [
                "forwarded",
                "x-real-ip",
                "true-client-ip",
                "x-client-ip",
                "x-forwarded-host",
            ] {
                assert!(
                    !folded.iter().any(|n| n == claim),
                    "{extra} {version}: {claim} in {names:?}"
                );
            }
            for set in ["x-forwarded-for", "x-forwarded-proto"] {
                assert_eq!(
                    (
                        folded.iter().filter(|n| *n == set).count(),
                        names.iter().filter(|n| *n == set).count()
                    ),
                    (1, 1),
                    "{extra} {version}: only the sidecar's {set}: {names:?}"
                );
            }
            assert!(!body.contains("198.51.100"), "{extra} {version}: {body}");
            assert!(!body.contains("evil.example"), "{extra} {version}: {body}");
            // Underscores otherwise pass where the listener allows them.
            assert_eq!(
                names.contains(&"x_custom".to_owned()),
                !extra.is_empty(),
                "{extra} {version}: {names:?}"
            );
        }
        s.proxy.shutdown().await;
    }
}
