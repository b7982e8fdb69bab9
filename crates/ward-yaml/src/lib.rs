//! ward-yaml: the one door through which operator-written YAML becomes typed values.
//!
//! Every config and policy file goes through [`from_str`] / [`from_file`], which wrap
//! serde-saphyr (pure Rust, panic-free, maintained; `serde_yaml` is archived) with the settings
//! ward wants for files humans edit: duplicate keys are an error, aliases are budgeted so an
//! alias bomb is refused instead of expanded, YAML 1.1 booleans such as `yes`/`no` are not
//! booleans, and every error carries `file:line:column`. Unknown keys are refused by the
//! callers' `#[serde(deny_unknown_fields)]`. [`Duration`] parses `10s`, `1h30m` and friends.

#![forbid(unsafe_code)]

mod duration;
mod load;

pub use duration::{parse_duration, Duration, DurationError};
pub use load::{from_file, from_str, read_file, YamlError, MAX_FILE_BYTES};
pub use serde_saphyr::{Location, Spanned};

#[cfg(test)]
mod tests;
