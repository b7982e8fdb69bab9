//! Per-request rules: methods and paths, the path normalization that keeps `..` and encoded
//! tricks from slipping past a prefix rule, and the validation that keeps such rules off TCP
//! listeners.

use ward_identity::SpiffeId;

use super::http::{encode_path, normalize_path, PathError, PathPattern, RequestFacts};
use super::*;

const LISTENERS: &[Listener<'static>] = &[
    Listener {
        name: "web",
        http: true,
    },
    Listener {
        name: "db",
        http: false,
    },
];

const POLICY: &str = r#"
rules:
  - name: frontend-reads-orders
    from: ["spiffe://example.org/ns/web/sa/frontend"]
    to: { listeners: [web], methods: [GET, HEAD], paths: ["/v1/orders/*", "/healthz"] }
  - name: no-deletes
    action: deny
    from: ["spiffe://example.org/*"]
    to: { listeners: [web], methods: [DELETE] }
  - name: admin-everything
    from: ["spiffe://example.org/ns/ops/sa/admin"]
    to: { listeners: [web] }
"#;

fn decide(p: &Policy, peer: &str, method: &str, raw: &str) -> String {
    let path = normalize_path(raw).unwrap();
    let facts = RequestFacts {
        method,
        path: &path,
    };
    p.evaluate_request(&SpiffeId::parse(peer).unwrap(), "web", &facts)
        .to_string()
}

#[test]
fn methods_and_paths_decide_each_request() {
    let p = compile("p.yaml", POLICY, Some(LISTENERS)).unwrap();
    let front = "spiffe://example.org/ns/web/sa/frontend";
    let admin = "spiffe://example.org/ns/ops/sa/admin";
    assert_eq!(
        decide(&p, front, "GET", "/v1/orders/7"),
        "allow (rule: frontend-reads-orders)"
    );
    assert_eq!(
        decide(&p, front, "HEAD", "/healthz"),
        "allow (rule: frontend-reads-orders)"
    );
    assert_eq!(
        decide(&p, front, "POST", "/v1/orders/7"),
        "deny (rule: default-deny)"
    );
    assert_eq!(
        decide(&p, front, "GET", "/v1/orders"),
        "deny (rule: default-deny)"
    );
    assert_eq!(
        decide(&p, front, "GET", "/v1/admin"),
        "deny (rule: default-deny)"
    );
    assert_eq!(
        decide(&p, front, "get", "/v1/orders/7"),
        "deny (rule: default-deny)"
    );
    assert_eq!(
        decide(&p, admin, "DELETE", "/v1/orders/7"),
        "deny (rule: no-deletes)"
    );
    assert_eq!(
        decide(&p, admin, "PATCH", "/anything"),
        "allow (rule: admin-everything)"
    );
    // Tricks that normalize to a path outside the rule.
    for raw in [
        "/v1/orders/../../admin",
        "/v1/orders/%2e%2e/%2E%2E/admin",
        "/v1/orders/./../x",
    ] {
        assert_eq!(
            decide(&p, front, "GET", raw),
            "deny (rule: default-deny)",
            "{raw}"
        );
    }
    // And ones that normalize into it.
    for raw in ["//v1//orders//7", "/v1/x/../orders/7", "/v1/%6frders/7"] {
        assert_eq!(
            decide(&p, front, "GET", raw),
            "allow (rule: frontend-reads-orders)",
            "{raw}"
        );
    }

    // Connection level: a peer with any possible request gets in; method-only deny rules
    // refuse requests, not connections; a peer with no rule at all is refused at once.
    let conn = |peer: &str| {
        p.evaluate(&SpiffeId::parse(peer).unwrap(), "web")
            .to_string()
    };
    assert_eq!(conn(front), "allow (rule: frontend-reads-orders)");
    assert_eq!(conn(admin), "allow (rule: admin-everything)");
    assert_eq!(
        conn("spiffe://example.org/ns/x/sa/y"),
        "deny (rule: default-deny)"
    );
}

#[test]
fn normalization_refuses_what_it_cannot_decide() {
    let ok = [
        ("/", "/"),
        ("/a/b/", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/../..", "/"),
        ("//a///b", "/a/b"),
        ("/caf%C3%A9", "/café"),
        ("/a%20b", "/a b"),
        // Reserved characters that arrive encoded stay encoded (upper-case hex).
        ("/public/a%3Bb", "/public/a%3Bb"),
        ("/public/a%3bb", "/public/a%3Bb"),
        ("/public/a%3Fb%23c", "/public/a%3Fb%23c"),
        ("/public/a%25b", "/public/a%25b"),
        ("/public/a%253Bb", "/public/a%253Bb"),
        ("/public/x%2e%3b", "/public/x.%3B"),
        ("/public/%2e%2e/x", "/x"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
    }
    let bad = [
        ("a/b", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("/a/%2fb", PathError::ForbiddenEscape),
        ("/a/%2Fb", PathError::ForbiddenEscape),
        ("/a%5cb", PathError::ForbiddenEscape),
        ("/a%00", PathError::ForbiddenEscape),
        ("/a\\b", PathError::ForbiddenByte),
        ("/a\tb", PathError::ForbiddenByte),
        ("/a%zz", PathError::BadEscape),
        ("/a%4", PathError::BadEscape),
        ("/%ff", PathError::NotUtf8),
        ("/..", PathError::AboveRoot),
        ("/a/../../b", PathError::AboveRoot),
        // Path parameters, which Tomcat and Spring strip before resolving dot segments.
        ("/public/..;/admin", PathError::PathParameter),
        ("/public/..;name=value/admin", PathError::PathParameter),
        ("/public/a;b", PathError::PathParameter),
        ("/public;/x", PathError::PathParameter),
        ("/public/%2e%2e;/admin", PathError::PathParameter),
        ("/public/.%2e;x/admin", PathError::PathParameter),
        // A dot segment once an encoded ';' is decoded and stripped.
        ("/public/..%3B/admin", PathError::PathParameter),
        ("/public/%2e%2e%3b/admin", PathError::PathParameter),
        ("/public/%2e%3Bx/admin", PathError::PathParameter),
    ];
    for (raw, want) in bad {
        assert_eq!(normalize_path(raw), Err(want), "{raw}");
    }
    // Forwarding re-encodes, and the app's decoding gives back the authorized path.
    for raw in [
        "/caf%C3%A9/a%20b",
        "/x%3Fy",
        "/a#b",
        "/public/a%3bb",
        "/a%25%3F",
    ] {
        let path = normalize_path(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(normalize_path(&encode_path(&path)).unwrap(), path, "{raw}");
    }
    assert_eq!(encode_path("/x?y#z é"), "/x%3Fy%23z%20%C3%A9");
    // What is forwarded for an encoded ';' is the encoded ';', never a path parameter.
    assert_eq!(
        encode_path(&normalize_path("/public/a%3bb").unwrap()),
        "/public/a%3Bb"
    );
}

#[test]
fn path_patterns() {
    let under = PathPattern::parse("/v1/*").unwrap();
    assert!(under.matches("/v1/") && under.matches("/v1/a/b") && !under.matches("/v1"));
    assert!(!under.matches("/v10/a"));
    let all = PathPattern::parse("/*").unwrap();
    assert!(all.matches("/") && all.matches("/x"));
    assert!(PathPattern::parse("/exact").unwrap().matches("/exact"));
    for bad in [
        "v1/*", "/v1/*/x", "/v1*", "/a/../b", "//a", "/a%20b", "/v1/./*",
    ] {
        assert!(PathPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn request_rules_are_validated_and_located() {
    let cases = [
        (
            "to: { listeners: [db], methods: [GET] }",
            "need an HTTP listener, and \"db\" is `protocol: tcp`",
        ),
        (
            "to: { listeners: [web], methods: [get] }",
            "methods are case-sensitive: write \"GET\"",
        ),
        (
            "to: { listeners: [web], methods: [\"G ET\"] }",
            "not an HTTP method name",
        ),
        (
            "to: { listeners: [web], methods: [] }",
            "`to.methods` is empty",
        ),
        (
            "to: { listeners: [web], paths: [\"/a/../b\"] }",
            "normalized form",
        ),
        (
            "to: { listeners: [web], paths: [\"v1\"] }",
            "must start with '/'",
        ),
        ("to: { listeners: [web], hosts: [a] }", "hosts"),
    ];
    for (to, want) in cases {
        let text = format!("rules:\n  - name: r\n    from: [\"spiffe://e/a\"]\n    {to}\n");
        let err = compile("p.yaml", &text, Some(LISTENERS)).expect_err(to);
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains(want), "want {want:?} in {err}");
    }
}

#[test]
fn the_allocation_free_check_agrees_with_the_full_normalization() {
    // Every path up to 5 bytes long over an alphabet of separators, dots, escapes, a
    // parameter and plain letters: wherever the quick check answers, the full
    // normalization gives the same result.
    let alphabet: &[u8] = b"/.a%2eF;~";
    let mut quick = 0;
    let mut paths = vec![String::from("/")];
    for _ in 0..4 {
        let mut longer = Vec::new();
        for p in &paths {
            for &c in alphabet {
                let mut q = p.clone();
                q.push(c as char);
                longer.push(q);
            }
        }
        for p in &longer {
            let full = http::normalize_in_full(p);
            assert_eq!(normalize_path(p), full, "{p:?}");
            if full.as_deref() == Ok(p.as_str()) {
                quick += 1;
            }
        }
        paths = longer;
    }
    assert!(
        quick > 100,
        "too few already-normal paths exercised: {quick}"
    );
    for raw in ["/", "/a/", "/v1/orders/7", "/a/b:c@d~e", "/..../x"] {
        assert_eq!(normalize_path(raw).as_deref(), Ok(raw));
    }
    for raw in ["//a", "/a//b", "/./a", "/a/..", "/a/.", "a/b", ""] {
        assert_ne!(normalize_path(raw).as_deref(), Ok(raw));
    }
}
