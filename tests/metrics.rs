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
