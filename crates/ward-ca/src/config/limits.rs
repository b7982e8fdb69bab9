//! The `limits:` key of the CA config: request sizes and deadlines, how much one client
//! address may take (enrollments per second, connections), and how much one SPIFFE ID may
//! ask (renewals per minute, JWT-SVIDs per second). Zero limits are refused, at the line that
//! sets them.

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
    /// Renewals (`/v1/renew`, app certificates included) per minute per SPIFFE ID, burst the
    /// same: every replica of a workload shares its ID's budget.
    pub renew_per_id_per_minute: u32,
    /// JWT-SVIDs (`/v1/jwt`) per second per SPIFFE ID, burst the same.
    pub jwt_per_id_per_sec: u32,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    max_body_bytes: Option<Spanned<u64>>,
    enroll_per_ip_per_sec: Option<Spanned<u32>>,
    request_timeout: Option<D>,
    idle_timeout: Option<D>,
    max_connections_per_ip: Option<Spanned<u32>>,
    renew_per_id_per_minute: Option<Spanned<u32>>,
    jwt_per_id_per_sec: Option<Spanned<u32>>,
}

impl LimitsFile {
    /// The limits, defaults filled in; `at` places a problem at its line.
    pub(crate) fn validate(
        &self,
        file: &str,
        at: &dyn Fn(&Location, String) -> YamlError,
    ) -> Result<CaLimits, YamlError> {
        let l = self;
        let at_least_one = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            Some(v) if v.value == 0 => Err(at(
                &v.referenced,
                format!("limits.{key} must be at least 1"),
            )),
            Some(v) => Ok(v.value),
            None => Ok(default),
        };
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
            renew_per_id_per_minute: at_least_one(
                &l.renew_per_id_per_minute,
                "renew_per_id_per_minute",
                60,
            )?,
            jwt_per_id_per_sec: at_least_one(&l.jwt_per_id_per_sec, "jwt_per_id_per_sec", 50)?,
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
