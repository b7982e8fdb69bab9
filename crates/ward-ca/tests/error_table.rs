//! docs/ca.md's table of refusals is the code's: every `ErrorCode` appears once, under the
//! status the CA sends it with, and nothing else does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ward_api::ErrorCode;

#[test]
fn the_documented_error_table_matches_the_codes() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ca.md");
    let text = std::fs::read_to_string(docs).unwrap();
    let table = text
        .split("| status | codes |")
        .nth(1)
        .expect("the error table");
    let mut documented: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let statuses: Vec<u16> = cells[1]
            .split('/')
            .map(|s| s.trim().parse().unwrap())
            .collect();
        // Backticked words of lower case and `_` are codes (not `limits.request_timeout`).
        let codes: Vec<&str> = cells[2]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        for code in codes {
            let previous = documented.insert(code.to_owned(), statuses.clone());
            assert!(previous.is_none(), "{code} is documented twice");
        }
    }
    for code in ErrorCode::ALL {
        let statuses = documented
            .remove(code.as_str())
            .unwrap_or_else(|| panic!("{code} is missing from docs/ca.md"));
        assert!(
            statuses.contains(&code.status()),
            "{code} is sent with {}, documented under {statuses:?}",
            code.status()
        );
    }
    assert!(
        documented.is_empty(),
        "documented but not codes: {documented:?}"
    );
}
