//! Reading Prometheus text in tests: a sample that is missing fails the test, so a renamed
//! metric or label can never read as zero; [`sample_or_zero`] is for counters whose label set
//! may not have been counted yet, and still fails when the metric family does not exist.

/// The value of the sample whose line starts with `prefix` (name and labels).
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The value of the sample, panicking when it is missing.
pub fn must(text: &str, prefix: &str) -> f64 {
    sample(text, prefix).unwrap_or_else(|| panic!("no metric sample {prefix}"))
}

/// The value of the sample, or zero when it is missing but its family is exported.
pub fn sample_or_zero(text: &str, prefix: &str) -> f64 {
    sample(text, prefix).unwrap_or_else(|| {
        let family = prefix.split('{').next().unwrap_or(prefix);
        let family = family.strip_suffix("_total").unwrap_or(family);
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {family} "))),
            "metric family {family} is not exported"
        );
        0.0
    })
}

/// Parses `text` with promtool (`promtool check metrics`), a Prometheus text parser nobody
/// here wrote: `Err` holds what it said when it could not parse the page. Its lint remarks
/// (names, help texts) are not parse failures and are ignored.
pub fn promtool_parses(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (make test installs it)");
    // promtool reads the Prometheus text format, which has no OpenMetrics `info` type: an
    // info metric is a gauge of 1 there. Nothing else is changed.
    let text = text.replace(" info\n", " gauge\n");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .expect("promtool reads its input");
    }
    let out = child.wait_with_output().expect("promtool runs");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if said.contains("parsing error") || said.contains("error while linting") {
        return Err(said);
    }
    Ok(())
}
