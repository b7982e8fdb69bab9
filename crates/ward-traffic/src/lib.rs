//! ward-traffic: the traffic behind `make bench` (`ward-load`, fixed-rate HTTP/1.1 load with
//! latencies measured from each request's due time) and `make soak` (`ward-soak`, thousands of
//! long-lived connections replaced at random lifetimes, and the echo app behind them). Not part
//! of the product; no ward crate depends on it. What the two binaries share lives here: the
//! duration arguments they take.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Parses a duration argument: a whole number followed by `ms`, `s`, `m` or `h` (`500ms`,
/// `30s`, `10m`, `1h`). Nothing else is accepted: a typo fails the run rather than meaning
/// something unintended.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 500ms, 30s, 10m or 1h");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "10 s",
            "-1s",
            "10x",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
