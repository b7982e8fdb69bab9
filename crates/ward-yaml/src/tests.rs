//! Tests that ward-yaml refuses what operators must never get silently: unknown keys, duplicate
//! keys, alias bombs, YAML 1.1 booleans, bare-number durations; and that errors are located.

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    enabled: bool,
    #[serde(default)]
    items: Vec<String>,
    timeout: Option<Duration>,
}

#[test]
fn parses_a_valid_file() {
    let c: Config = from_str(
        "c.yaml",
        "name: a\nenabled: true\nitems: [x, y]\ntimeout: 1h30m\n",
    )
    .unwrap();
    assert_eq!(c.name, "a");
    assert_eq!(c.items, ["x", "y"]);
    assert_eq!(c.timeout.unwrap().get().as_secs(), 5400);
}

#[test]
fn unknown_key_is_named_with_line_and_column() {
    let err = from_str::<Config>("c.yaml", "name: a\nenabled: true\nenabeld: false\n").unwrap_err();
    assert_eq!(err.file, "c.yaml");
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.message.contains("enabeld"), "{err}");
    assert!(err.to_string().starts_with("c.yaml:3:"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn duplicate_key_is_an_error() {
    let err = from_str::<Config>("c.yaml", "name: a\nenabled: true\nname: b\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert_eq!(err.message, "duplicate mapping key: name");
}

#[test]
fn type_error_is_located() {
    let err = from_str::<Config>("c.yaml", "name: a\nenabled: maybe\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn yaml11_booleans_are_not_booleans() {
    assert!(from_str::<Config>("c.yaml", "name: a\nenabled: yes\n").is_err());
    assert!(from_str::<Config>("c.yaml", "name: a\nenabled: on\n").is_err());
}

#[test]
fn alias_bomb_is_refused_quickly() {
    // "Billion laughs": each level multiplies the previous by ten.
    let mut doc = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    let err =
        from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>("bomb.yaml", &doc)
            .unwrap_err();
    assert!(err.message.to_lowercase().contains("alias"), "{err}");
}

#[test]
fn modest_aliases_still_work() {
    let v: std::collections::BTreeMap<String, Vec<String>> =
        from_str("a.yaml", "a: &x [p, q]\nb: *x\n").unwrap();
    assert_eq!(v["b"], ["p", "q"]);
}

#[test]
fn multiple_documents_are_refused() {
    assert!(from_str::<Config>(
        "c.yaml",
        "name: a\nenabled: true\n---\nname: b\nenabled: true\n"
    )
    .is_err());
}

#[test]
fn durations() {
    for (text, ms) in [
        ("500ms", 500),
        ("10s", 10_000),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("1m30s", 90_000),
    ] {
        assert_eq!(parse_duration(text).unwrap().as_millis(), ms, "{text}");
    }
    for bad in [
        "",
        "10",
        "s",
        "10x",
        "1.5h",
        "-1s",
        "1h 30m",
        "99999999999999s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Duration(std::time::Duration::from_secs(5400)).to_string(),
        "1h30m"
    );
    assert_eq!(
        Duration(std::time::Duration::from_secs(86_400)).to_string(),
        "24h"
    );
    assert_eq!(
        Duration(std::time::Duration::from_millis(1500)).to_string(),
        "1.500s"
    );
    let err = from_str::<Config>("c.yaml", "name: a\nenabled: true\ntimeout: 30\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn from_file_names_the_file_and_caps_size() {
    let dir = std::env::temp_dir().join(format!("ward-yaml-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.yaml");
    std::fs::write(&path, "name: a\nbogus: 1\nenabled: true\n").unwrap();
    let err = from_file::<Config>(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:", path.display())),
        "{err}"
    );
    let missing = from_file::<Config>(&dir.join("nope.yaml")).unwrap_err();
    assert!(missing.message.contains("cannot read"), "{missing}");
    // The one door: regular files only, the size cap, UTF-8 refused rather than mangled.
    let err = read_file(&dir).unwrap_err();
    assert_eq!(err.message, "not a regular file", "{err}");
    let big = dir.join("big.yaml");
    std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
    let err = read_file(&big).unwrap_err();
    assert!(err.message.contains("larger than the limit"), "{err}");
    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"name: caf\xe9\n").unwrap();
    let err = from_file::<Config>(&latin1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: file is not UTF-8 (invalid byte at offset 9)",
            latin1.display()
        )
    );
    let link = dir.join("link.yaml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(read_file(&link).is_ok(), "a symlink to a file is fine");
    std::fs::remove_dir_all(&dir).unwrap();
}
