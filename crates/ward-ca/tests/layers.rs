//! ward-ca stays in layers (docs/architecture.md): each module of `src/` is read, every path it
//! names into the crate (`use` trees, braces and all, and paths written in code) is resolved
//! to the module it reaches, and the test fails on an import from a lower layer to a higher
//! one, on a circle of imports wider than three modules, and on I/O, a runtime, HTTP or a
//! database crate in `authority`, the CA in memory. Rust enforces layers only at crate lines,
//! so inside this crate this test is what Go's ban on import cycles is to SPIRE.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use its own layer and those below it.
const LAYERS: [&str; 6] = ["authority", "config", "state", "keys", "server", "cli"];

/// What the CA in memory must not touch: a runtime, HTTP, a database, the file system (also
/// through ward-tls's file helpers).
const NOT_IN_AUTHORITY: [&str; 9] = [
    "tokio::",
    "hyper::",
    "rusqlite::",
    "tokio_postgres::",
    "std::fs",
    "load_certs(",
    "load_private_key(",
    "write_atomic(",
    "check_key_permissions(",
];

/// The widest circle of modules allowed (within one layer).
const MAX_CIRCLE: usize = 3;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// ward-ca's modules.
fn modules() -> BTreeMap<String, String> {
    modules_of(&src())
}

/// Every module file under `src`: its module path (`keys::dir::rotation`) and its text
/// without comments and without the unit tests at its end. Files that are only unit tests,
/// and binaries, are skipped.
fn modules_of(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        if rel.starts_with("bin") {
            continue;
        }
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        let name = parts.join("::");
        if ["lib", "main", "tests"].contains(&name.as_str()) || name.ends_with("_tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text,
        };
        modules.insert(name, strip_comments(text));
    }
    modules
}

/// The text without `//` comments (a `//` inside `://`, as in a URL, is not one).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut cut = line.len();
            let bytes = line.as_bytes();
            for i in 0..bytes.len().saturating_sub(1) {
                if bytes[i] == b'/' && bytes[i + 1] == b'/' && (i == 0 || bytes[i - 1] != b':') {
                    cut = i;
                    break;
                }
            }
            &line[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names, braces expanded: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`,
/// `a::c::e`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match tree.find('{') {
        None => {
            let path = tree.split(" as ").next().unwrap().trim();
            if !path.is_empty() {
                out.push(format!("{prefix}{path}"));
            }
        }
        Some(open) => {
            let head = &tree[..open];
            let Some(close) = tree.rfind('}').filter(|c| *c > open) else {
                return;
            };
            let inner = &tree[open + 1..close];
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&format!("{prefix}{head}"), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&format!("{prefix}{head}"), &inner[start..], out);
        }
    }
}

/// The crate-relative paths module `name` reaches through `crate::`, `super::` and `self::`.
fn paths(name: &str, text: &str) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    // `use` statements, whole (they may span lines and hold braces); the rest is code.
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        // A `use` item starts its line (after `pub`, `pub(crate)`...): not a word in a string.
        let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
        let lead = rest[line_start..at].trim();
        let after = &rest[at + 4..];
        let Some(end) = after.find(';') else { break };
        if lead.is_empty() || lead.starts_with("pub") {
            expand("", &after[..end].replace('\n', " "), &mut raw);
            code.push_str(&rest[..at]);
        } else {
            code.push_str(&rest[..at + 4 + end]);
        }
        rest = &after[end..];
    }
    code.push_str(rest);
    // Paths written in code.
    for anchor in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            let before = code[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let len = code[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - start);
            raw.push(code[start..start + len].trim_end_matches(':').to_owned());
        }
    }
    let here: Vec<String> = name.split("::").map(str::to_owned).collect();
    raw.iter()
        .filter_map(|p| {
            let mut segs = p.split("::").map(str::to_owned);
            let mut path = match segs.next()?.as_str() {
                "crate" => Vec::new(),
                "super" => here[..here.len() - 1].to_vec(),
                "self" => here.clone(),
                _ => return None,
            };
            for s in segs {
                if s == "super" {
                    path.pop();
                } else {
                    path.push(s);
                }
            }
            Some(path)
        })
        .collect()
}

/// The module a path reaches: its longest prefix that is a module.
fn resolve(path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    modules
        .iter()
        .map(|(name, text)| {
            let to = paths(name, text)
                .iter()
                .filter_map(|p| resolve(p, modules))
                .filter(|m| m != name)
                .collect();
            (name.clone(), to)
        })
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, (i, i));
        w.stack.push(v);
        for u in &w.edges[v] {
            let u = u.as_str();
            match w.index.get(u).copied() {
                None => {
                    visit(w, u);
                    let low = w.index[u].1.min(w.index[v].1);
                    w.index.get_mut(v).unwrap().1 = low;
                }
                Some((ui, _)) if w.stack.contains(&u) => {
                    let low = ui.min(w.index[v].1);
                    w.index.get_mut(v).unwrap().1 = low;
                }
                Some(_) => {}
            }
        }
        if w.index[v].0 == w.index[v].1 {
            let mut component = Vec::new();
            while let Some(u) = w.stack.pop() {
                component.push(u.to_owned());
                if u == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn every_import_runs_down_the_layers_and_no_circle_is_wide() {
    let modules = modules();
    assert!(modules.len() > 40, "found only {} modules", modules.len());
    let edges = edges(&modules);
    let upward: Vec<String> = edges
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (from, t)))
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one ({}):\n{}",
        LAYERS.join(" < "),
        upward.join("\n")
    );
    let wide: Vec<String> = circles(&edges)
        .into_iter()
        .filter(|c| c.len() > MAX_CIRCLE)
        .map(|c| c.join(", "))
        .collect();
    assert!(
        wide.is_empty(),
        "import circles wider than {MAX_CIRCLE} modules:\n{}",
        wide.join("\n")
    );
}

/// No crate of the workspace has a circle of imports wider than [`MAX_CIRCLE`] modules
/// (ward-proxy's config, workload, identity sources and error once made one of seven).
#[test]
fn no_crate_of_the_workspace_has_a_wide_import_circle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wide = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        seen += 1;
        let modules = modules_of(&src);
        for circle in circles(&edges(&modules)) {
            if circle.len() > MAX_CIRCLE {
                wide.push(format!(
                    "{}: {}",
                    entry.file_name().to_string_lossy(),
                    circle.join(", ")
                ));
            }
        }
    }
    assert!(seen >= 10, "found only {seen} crates");
    assert!(
        wide.is_empty(),
        "import circles wider than {MAX_CIRCLE} modules:\n{}",
        wide.join("\n")
    );
}

#[test]
fn the_ca_in_memory_does_no_io_and_needs_no_runtime() {
    let found: Vec<String> = modules()
        .iter()
        .filter(|(name, _)| layer(name) == 0)
        .flat_map(|(name, text)| {
            NOT_IN_AUTHORITY
                .iter()
                .filter(|bad| text.contains(**bad))
                .map(move |bad| format!("{name} uses {bad}"))
        })
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The reading itself, on text whose answer is known.
#[test]
fn use_trees_and_relative_paths_are_read_whole() {
    let mut out = Vec::new();
    expand("", "crate::a::{b, c::{d, e as f}, self}", &mut out);
    assert_eq!(
        out,
        [
            "crate::a::b",
            "crate::a::c::d",
            "crate::a::c::e",
            "crate::a::self"
        ]
    );
    let text = "use super::{x, y};\nfn f() { crate::keys::dir::init(); let u = \"https://a/b\"; }";
    let found = paths("state::postgres::batch", &strip_comments(text));
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        [
            "state::postgres::x",
            "state::postgres::y",
            "keys::dir::init"
        ]
    );
}
