//! Loading YAML text into typed values with located, one-line errors and hostile-input limits.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::options::DuplicateKeyPolicy;
use serde_saphyr::Options;

/// Largest file ward will read as config or policy. Real files are a few KiB; this bounds the
/// work a hostile or mistaken file can cause.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A YAML file that could not become the value asked for: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The file (or source name) the text came from.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong, in one line.
    pub message: String,
}

impl YamlError {
    /// An error found after parsing (e.g. a rule naming an unknown listener), at a known place.
    pub fn at(file: &str, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for YamlError {}

/// The parser settings for operator files.
fn options() -> Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_depth: 64,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 100,
        },
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Parses `text` (named `file` in errors) into `T`.
pub fn from_str<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|err| {
        let location = err.location();
        let message = one_line(&err.without_snippet().to_string(), location.as_ref());
        YamlError {
            file: file.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    })
}

/// Reads and parses a file (through [`read_file`]).
pub fn from_file<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = read_file(path)?;
    from_str(&path.display().to_string(), &text)
}

/// The one door for operator files (configs and policies): a regular file (a symlink to one,
/// as Kubernetes mounts ConfigMaps, is fine), at most [`MAX_FILE_BYTES`] (checked on what is
/// actually read, so a file that grows meanwhile is still caught), and UTF-8 (refused, never
/// decoded lossily). Errors name the file.
pub fn read_file(path: &Path) -> Result<String, YamlError> {
    use std::io::Read;
    let name = path.display().to_string();
    let fail = |m: String| YamlError::whole_file(&name, m);
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is larger than the limit of {MAX_FILE_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "file is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reduces the library's message to one line without a repeated location suffix.
fn one_line(message: &str, location: Option<&serde_saphyr::Location>) -> String {
    let mut msg = message
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_owned();
    // The library's advice to change its options is not advice for an operator.
    if let Some(cut) = msg.find(", set DuplicateKeyPolicy") {
        msg.truncate(cut);
    }
    if let Some(l) = location {
        let suffix = format!(" at line {}, column {}", l.line(), l.column());
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_owned();
        }
    }
    msg
}
