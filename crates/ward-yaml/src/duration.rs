//! Human durations in config files and on the command line: `500ms`, `10s`, `5m`, `1h30m`, `2d`.
//!
//! A bare number is refused: `timeout: 30` is ambiguous, and ward does not guess units.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};

/// A `std::time::Duration` that deserializes from text like `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The wrapped standard duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if secs == 0 {
            return write!(f, "{millis}ms");
        }
        for (unit, size) in [("h", 3_600), ("m", 60)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        if secs > 0 || millis > 0 {
            write!(f, "{secs}")?;
            if millis > 0 {
                write!(f, ".{millis:03}")?;
            }
            write!(f, "s")?;
        }
        Ok(())
    }
}

/// Text that is not a duration ward accepts; says what was given and what would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    text: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: use e.g. 500ms, 10s, 5m, 1h30m",
            self.text
        )
    }
}

impl std::error::Error for DurationError {}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Self).map_err(de::Error::custom)
    }
}

/// Parses a sequence of `<digits><unit>` groups; units are `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let bad = || DurationError {
        text: text.to_owned(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(digits);
        let value: u128 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total_ms += value * scale;
        rest = tail;
    }
    let ms = u64::try_from(total_ms).map_err(|_| bad())?;
    Ok(std::time::Duration::from_millis(ms))
}
