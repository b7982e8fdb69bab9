//! The `limits:` section of the proxy config: what every connection (and, on HTTP
//! listeners, every request) is allowed, with defaults and the checks on each value.

use std::time::Duration;

use serde::Deserialize;
use ward_yaml::{Spanned, YamlError};

/// Limits applied to every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections across all listeners; more are closed at once and counted.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake (a silent client is cut after it).
    pub handshake_timeout: Duration,
    /// Time allowed to connect to the app or the upstream.
    pub connect_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// On shutdown, how long open connections get to finish.
    pub shutdown_grace: Duration,
    /// HTTP listeners: largest request head (request line and headers); more gets 431.
    pub max_request_header_bytes: usize,
    /// HTTP listeners: time allowed to send a request head (a slow client is cut).
    pub request_header_timeout: Duration,
    /// HTTP listeners: largest request body; a larger declared length gets 413 at once, a
    /// longer streamed body is cut (and the request answered 413).
    pub max_request_body_bytes: u64,
    /// HTTP listeners: time the app (or upstream) has to start its response; then 504.
    pub response_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
            max_request_header_bytes: 64 * 1024,
            request_header_timeout: Duration::from_secs(10),
            max_request_body_bytes: 16 * 1024 * 1024,
            response_timeout: Duration::from_secs(60),
        }
    }
}

type D = Option<Spanned<ward_yaml::Duration>>;

/// The section as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    max_connections: Option<Spanned<u32>>,
    handshake_timeout: D,
    connect_timeout: D,
    idle_timeout: D,
    shutdown_grace: D,
    max_request_header_bytes: Option<Spanned<u64>>,
    request_header_timeout: D,
    max_request_body_bytes: Option<Spanned<u64>>,
    response_timeout: D,
}

/// A duration that must be greater than zero (`what` names it in the error).
pub(crate) fn positive(
    file: &str,
    d: &D,
    what: &str,
    default: Duration,
) -> Result<Duration, YamlError> {
    match d {
        None => Ok(default),
        Some(s) if s.value.get().is_zero() => Err(YamlError::at(
            file,
            s.referenced.line(),
            s.referenced.column(),
            format!("{what} must be greater than zero"),
        )),
        Some(s) => Ok(s.value.get()),
    }
}

/// Checks the section and fills in defaults.
pub(crate) fn parse(lf: &LimitsFile, file: &str) -> Result<Limits, YamlError> {
    let defaults = Limits::default();
    let duration =
        |d: &D, what: &str, default| positive(file, d, &format!("limits.{what}"), default);
    let max_connections = match &lf.max_connections {
        None => defaults.max_connections,
        Some(s) if s.value == 0 => {
            return Err(YamlError::at(
                file,
                s.referenced.line(),
                s.referenced.column(),
                "limits.max_connections must be at least 1",
            ))
        }
        Some(s) => s.value as usize,
    };
    let max_request_header_bytes = match &lf.max_request_header_bytes {
        None => defaults.max_request_header_bytes,
        Some(s) if (8192..=1 << 20).contains(&s.value) => s.value as usize,
        Some(s) => {
            return Err(YamlError::at(
                file,
                s.referenced.line(),
                s.referenced.column(),
                "limits.max_request_header_bytes must be between 8192 and 1048576",
            ))
        }
    };
    Ok(Limits {
        max_connections,
        handshake_timeout: duration(
            &lf.handshake_timeout,
            "handshake_timeout",
            defaults.handshake_timeout,
        )?,
        connect_timeout: duration(
            &lf.connect_timeout,
            "connect_timeout",
            defaults.connect_timeout,
        )?,
        idle_timeout: duration(&lf.idle_timeout, "idle_timeout", defaults.idle_timeout)?,
        shutdown_grace: lf
            .shutdown_grace
            .as_ref()
            .map_or(defaults.shutdown_grace, |s| s.value.get()),
        max_request_header_bytes,
        request_header_timeout: duration(
            &lf.request_header_timeout,
            "request_header_timeout",
            defaults.request_header_timeout,
        )?,
        max_request_body_bytes: match &lf.max_request_body_bytes {
            None => defaults.max_request_body_bytes,
            Some(s) if s.value == 0 => {
                return Err(YamlError::at(
                    file,
                    s.referenced.line(),
                    s.referenced.column(),
                    "limits.max_request_body_bytes must be at least 1",
                ))
            }
            Some(s) => s.value,
        },
        response_timeout: duration(
            &lf.response_timeout,
            "response_timeout",
            defaults.response_timeout,
        )?,
    })
}
