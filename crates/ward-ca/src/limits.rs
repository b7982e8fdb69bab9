//! The `limits:` key of the CA config: request sizes and deadlines, and how much one client
//! address may take (enrollments per second, connections). Zero limits are refused, at the
//! line that sets them.

use std::time::Duration;

use serde::Deserialize;
use ward_yaml::{Location, Spanned, YamlError};

type D = Spanned<ward_yaml::Duration>;

/// Request limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaLimits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Enrollments per second per client IP (burst the same).
    pub enroll_per_ip_per_sec: u32,
    /// Time to read a request's headers and body; also the deadline for the first complete
    /// request head after the TLS handshake.
    pub request_timeout: Duration,
    /// An open connection with no request in flight for this long is closed (HTTP/1.1
    /// keep-alive and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Connections one client IP address may hold open at once.
    pub max_connections_per_ip: usize,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    max_body_bytes: Option<Spanned<u64>>,
    enroll_per_ip_per_sec: Option<Spanned<u32>>,
    request_timeout: Option<D>,
    idle_timeout: Option<D>,
    max_connections_per_ip: Option<Spanned<u32>>,
}

impl LimitsFile {
    /// The limits, defaults filled in; `at` places a problem at its line.
    pub(crate) fn validate(
        &self,
        file: &str,
        at: &dyn Fn(&Location, String) -> YamlError,
    ) -> Result<CaLimits, YamlError> {
        let l = self;
        let limits = CaLimits {
            max_body_bytes: l
                .max_body_bytes
                .as_ref()
                .map_or(65_536, |v| v.value as usize),
            enroll_per_ip_per_sec: match &l.enroll_per_ip_per_sec {
                Some(v) if v.value == 0 => {
                    return Err(at(
                        &v.referenced,
                        "limits.enroll_per_ip_per_sec must be at least 1".into(),
                    ))
                }
                Some(v) => v.value,
                None => 20,
            },
            request_timeout: l
                .request_timeout
                .as_ref()
                .map_or(Duration::from_secs(10), |d| d.value.get()),
            idle_timeout: match &l.idle_timeout {
                Some(d) if d.value.get() < Duration::from_secs(1) => {
                    return Err(at(
                        &d.referenced,
                        "limits.idle_timeout must be at least 1s".into(),
                    ))
                }
                Some(d) => d.value.get(),
                None => Duration::from_secs(60),
            },
            max_connections_per_ip: match &l.max_connections_per_ip {
                Some(v) if v.value == 0 => {
                    return Err(at(
                        &v.referenced,
                        "limits.max_connections_per_ip must be at least 1".into(),
                    ))
                }
                Some(v) => v.value as usize,
                None => 64,
            },
        };
        if limits.max_body_bytes < 1024 {
            return Err(YamlError::whole_file(
                file,
                "limits.max_body_bytes must be at least 1024",
            ));
        }
        Ok(limits)
    }
}
