//! Policy compilation and evaluation: the decisions operators rely on, and the mistakes that
//! must be errors rather than silent no-matches.

use ward_identity::SpiffeId;

use super::*;

const LISTENERS: &[Listener<'static>] = &[
    Listener {
        name: "api",
        http: false,
    },
    Listener {
        name: "metrics",
        http: false,
    },
];

fn policy(text: &str) -> Policy {
    compile("p.yaml", text, Some(LISTENERS)).unwrap_or_else(|e| panic!("{e}"))
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

const EXAMPLE: &str = r#"
mode: enforce
rules:
  - name: web-to-api
    from: ["spiffe://example.org/ns/web/sa/frontend", "spiffe://example.org/ns/batch/*"]
    to: { listeners: [api] }
  - name: block-legacy
    action: deny
    from: ["spiffe://example.org/ns/legacy/*"]
  - name: legacy-allowed
    from: ["spiffe://example.org/ns/legacy/app"]
"#;

#[test]
fn allow_deny_and_default_deny() {
    let p = policy(EXAMPLE);
    let v = p.evaluate(&id("spiffe://example.org/ns/web/sa/frontend"), "api");
    assert_eq!(
        v.decision,
        Decision::Allow {
            rule: "web-to-api".into()
        }
    );
    assert!(v.permits());
    assert_eq!(v.to_string(), "allow (rule: web-to-api)");
    let v = p.evaluate(&id("spiffe://example.org/ns/batch/job1"), "api");
    assert!(v.permits());
    // Same peer, other listener: no allow rule covers it.
    let v = p.evaluate(&id("spiffe://example.org/ns/web/sa/frontend"), "metrics");
    assert_eq!(v.decision, Decision::Deny { rule: None });
    assert_eq!(v.rule(), "default-deny");
    assert!(!v.permits());
    // Deny beats allow even when the allow rule is more specific and listed later.
    let v = p.evaluate(&id("spiffe://example.org/ns/legacy/app"), "api");
    assert_eq!(
        v.decision,
        Decision::Deny {
            rule: Some("block-legacy".into())
        }
    );
    // Unknown identity, other trust domain: default deny.
    assert!(!p
        .evaluate(&id("spiffe://other.org/ns/web/sa/frontend"), "api")
        .permits());
}

#[test]
fn audit_mode_permits_but_reports_would_deny() {
    let p = policy(&EXAMPLE.replace("mode: enforce", "mode: audit"));
    let v = p.evaluate(&id("spiffe://example.org/ns/stranger"), "api");
    assert!(v.permits());
    assert_eq!(v.label(), "audit-deny");
    assert_eq!(v.decision, Decision::Deny { rule: None });
}

#[test]
fn empty_policy_denies_everything() {
    let p = policy("rules: []\n");
    assert_eq!(p.mode, Mode::Enforce);
    assert!(!p.evaluate(&id("spiffe://example.org/a"), "api").permits());
    assert!(!policy("{}\n")
        .evaluate(&id("spiffe://example.org/a"), "api")
        .permits());
}

#[test]
fn trust_domain_wildcard() {
    let p = policy("rules:\n  - name: all\n    from: [\"spiffe://example.org/*\"]\n");
    assert!(p
        .evaluate(&id("spiffe://example.org/anything/at/all"), "metrics")
        .permits());
    assert!(!p
        .evaluate(&id("spiffe://example.com/x"), "metrics")
        .permits());
}

#[test]
fn mistakes_are_located_errors() {
    let cases = [
        ("rules:\n  - name: a\n    from: [\"spiffe://example.org/a\"]\n    to: { listeners: [apii] }\n", 4, "unknown listener \"apii\" (inbound listeners: api, metrics)"),
        ("rules:\n  - name: a\n    from: [\"spiffe://Example.org/a\"]\n", 3, "invalid SPIFFE ID pattern"),
        ("rules:\n  - name: a\n    from:\n      - spiffe://example.org/a/*/b\n", 4, "'*' is only allowed"),
        ("rules:\n  - name: a\n    from: [\"example.org/a\"]\n", 3, "must start with \"spiffe://\""),
        ("rules:\n  - name: a\n    from: []\n", 3, "at least one"),
        ("rules:\n  - name: a\n    from: [\"spiffe://e/a\"]\n  - name: a\n    from: [\"spiffe://e/b\"]\n", 4, "duplicate rule name \"a\" (first used on line 2)"),
        ("rules:\n  - name: a\n    action: reject\n    from: [\"spiffe://e/a\"]\n", 3, "reject"),
        ("mode: enforcing\n", 1, "enforcing"),
        ("rules:\n  - name: a\n    form: [\"spiffe://e/a\"]\n", 3, "form"),
        ("rules:\n  - name: a\n    from: [\"spiffe://e/a\"]\n    to: { listeners: [] }\n", 4, "is empty"),
        ("rules:\n  - name: \"  \"\n    from: [\"spiffe://e/a\"]\n", 2, "must not be empty"),
    ];
    for (text, line, want) in cases {
        let err = compile("p.yaml", text, Some(LISTENERS)).expect_err(text);
        assert_eq!(err.line, Some(line), "{text}\n{err}");
        assert!(err.message.contains(want), "{text}\nwant {want:?} in {err}");
        assert!(
            err.to_string().starts_with(&format!("p.yaml:{line}:")),
            "{err}"
        );
    }
}

#[test]
fn listeners_are_unchecked_only_without_a_config() {
    let text = "rules:\n  - name: a\n    from: [\"spiffe://e/a\"]\n    to: { listeners: [zzz] }\n";
    assert!(compile("p.yaml", text, None).is_ok());
    assert!(compile("p.yaml", text, Some(&[])).is_err());
}
