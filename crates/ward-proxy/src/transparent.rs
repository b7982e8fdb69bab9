//! Transparent listeners: connections the pod's interception rules (`ward-intercept`)
//! redirected to the sidecar, whose original destination the kernel kept (`SO_ORIGINAL_DST`,
//! `IP6T_SO_ORIGINAL_DST`: the address the app dialled before the NAT `redirect`).
//!
//! Inbound, the connection goes to the app on the port the caller dialled, on loopback
//! (which the rules never intercept). Outbound, the sidecar originates mTLS to the address the
//! app dialled, and the server must prove the ID `destinations` maps that address to, or any
//! ID of this trust domain when none does; a destination that is not a sidecar fails the
//! handshake and gets nothing (no plaintext fallback), unless `passthrough` lists it.
//! A connection made straight to the listener (no redirect: its original destination is the
//! listener itself) is refused, so the sidecar never dials itself.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use tokio::net::TcpStream;
use ward_identity::IdPattern;
use ward_yaml::{Location, Spanned, YamlError};

/// Why an address range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address, or not one followed by `/BITS`.
    #[error("{0:?} is not an address range (10.0.0.0/8, fd00::/8)")]
    NotARange(String),
    /// A prefix length longer than the address.
    #[error("{text:?}: the prefix length must be 0-{max}")]
    Prefix {
        /// The range as written.
        text: String,
        /// 32 or 128.
        max: u8,
    },
    /// Bits set after the prefix (`10.0.0.1/8`): a typo more often than not.
    #[error("{0:?} has host bits set")]
    HostBits(String),
}

/// An address range, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `ADDR/BITS` or `ADDR`; host bits must be zero.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (addr, bits) = text.split_once('/').unwrap_or((text, ""));
        let net: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::NotARange(text.to_owned()))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() {
            max
        } else {
            bits.parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| CidrError::Prefix {
                    text: text.to_owned(),
                    max,
                })?
        };
        let cidr = Self { net, bits };
        if !cidr.contains(net) || cidr.masked(net) != net {
            return Err(CidrError::HostBits(text.to_owned()));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

/// Addresses (a range, and a port or every port) a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The range.
    pub cidr: Cidr,
    /// The port, or every port.
    pub port: Option<u16>,
}

impl Match {
    fn matches(&self, dst: SocketAddr) -> bool {
        self.cidr.contains(dst.ip()) && self.port.is_none_or(|p| p == dst.port())
    }
}

/// What a transparent outbound listener does with the destinations it is handed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransparentOutbound {
    /// Destinations whose server must be exactly one ID (or under one), first match wins.
    pub destinations: Vec<(Match, IdPattern)>,
    /// Destinations relayed in plaintext: no sidecar there, allowed on purpose.
    pub passthrough: Vec<Match>,
    /// What any other destination's server must prove.
    pub default_id: IdPattern,
}

/// How one redirected connection leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Plaintext to the original destination (a `passthrough` entry).
    Passthrough,
    /// mTLS, the server proving `destinations[i]`'s ID.
    Mapped(usize),
    /// mTLS, the server proving `default_id`.
    Default,
}

impl TransparentOutbound {
    /// The route for a connection the app made to `dst`.
    pub fn route(&self, dst: SocketAddr) -> Route {
        if self.passthrough.iter().any(|m| m.matches(dst)) {
            return Route::Passthrough;
        }
        self.destinations
            .iter()
            .position(|(m, _)| m.matches(dst))
            .map_or(Route::Default, Route::Mapped)
    }

    /// Every ID pattern a connector is needed for: the mapped ones in order, then the default.
    pub fn patterns(&self) -> Vec<IdPattern> {
        self.destinations
            .iter()
            .map(|(_, id)| id.clone())
            .chain(std::iter::once(self.default_id.clone()))
            .collect()
    }
}

/// The address the client dialled before the interception rules redirected it here.
/// `Err` when nothing was redirected (the connection came straight to `local`).
pub fn original_destination(sock: &TcpStream) -> std::io::Result<SocketAddr> {
    // An IPv4 connection on a dual-stack (`[::]`) listener has a v4-mapped local address,
    // and its original destination is kept by the IPv4 NAT.
    let local = unmap(sock.local_addr()?);
    let socket = socket2::SockRef::from(sock);
    let original = match local {
        SocketAddr::V4(_) => socket.original_dst_v4()?,
        SocketAddr::V6(_) => socket.original_dst_v6()?,
    };
    let original = original
        .as_socket()
        .map(unmap)
        .ok_or_else(|| std::io::Error::other("the original destination is not an IP address"))?;
    if original == local {
        return Err(std::io::Error::other(
            "connected to the listener itself, not redirected by the interception rules",
        ));
    }
    Ok(original)
}

/// `::ffff:a.b.c.d:p` as `a.b.c.d:p`; anything else unchanged.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map_or(addr, |v4| SocketAddr::from((v4, v6.port()))),
        v4 => v4,
    }
}

/// `transparent:` of an outbound listener in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparentFile {
    #[serde(default)]
    destinations: Vec<Spanned<DestinationFile>>,
    #[serde(default)]
    passthrough: Vec<Spanned<MatchFile>>,
    server_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFile {
    cidr: String,
    port: Option<u16>,
    server_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchFile {
    cidr: String,
    port: Option<u16>,
}

/// Validates `transparent:`; `own` is this sidecar's trust domain (the default server ID is
/// any workload of it).
pub fn parse(
    raw: &TransparentFile,
    own: &ward_identity::TrustDomain,
    file: &str,
) -> Result<TransparentOutbound, YamlError> {
    let at = |loc: &Location, msg: String| YamlError::at(file, loc.line(), loc.column(), msg);
    let id = |text: &str, loc: &Location| {
        IdPattern::parse(text).map_err(|e| at(loc, format!("server_id {text:?}: {e}")))
    };
    let cidr = |text: &str, loc: &Location| Cidr::parse(text).map_err(|e| at(loc, e.to_string()));
    let mut destinations = Vec::new();
    for d in &raw.destinations {
        let m = Match {
            cidr: cidr(&d.value.cidr, &d.referenced)?,
            port: d.value.port,
        };
        destinations.push((m, id(&d.value.server_id, &d.referenced)?));
    }
    let mut passthrough = Vec::new();
    for p in &raw.passthrough {
        passthrough.push(Match {
            cidr: cidr(&p.value.cidr, &p.referenced)?,
            port: p.value.port,
        });
    }
    let default_id = match &raw.server_id {
        Some(s) => id(&s.value, &s.referenced)?,
        None => IdPattern::parse(&format!("spiffe://{own}/*"))
            .map_err(|e| YamlError::whole_file(file, format!("transparent: {e}")))?,
    };
    Ok(TransparentOutbound {
        destinations,
        passthrough,
        default_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dst(s: &str) -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    #[test]
    fn ranges() {
        let c = Cidr::parse("10.89.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert!(c.contains("10.89.3.4".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!c.contains(IpAddr::from([10, 90, 0, 1])));
        assert!(c.contains(
            "::ffff:10.89.0.1"
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0]))
        ));
        assert!(Cidr::parse("10.89.0.1/16").is_err(), "host bits");
        assert!(Cidr::parse("10.89.0.0/33").is_err());
        assert!(Cidr::parse("fd00::/8").is_ok());
        assert_eq!(
            Cidr::parse("10.1.2.3").map(|c| c.to_string()),
            Ok("10.1.2.3/32".to_owned())
        );
        assert!(Cidr::parse("0.0.0.0/0").is_ok_and(|c| c.contains(IpAddr::from([1, 2, 3, 4]))));
    }

    #[test]
    fn passthrough_first_then_the_first_mapping_then_the_default() {
        let m = |c: &str, port| Match {
            cidr: Cidr::parse(c).unwrap_or_else(|e| panic!("{e}")),
            port,
        };
        let id = |s: &str| IdPattern::parse(s).unwrap_or_else(|e| panic!("{e}"));
        let t = TransparentOutbound {
            destinations: vec![
                (m("10.0.0.0/24", Some(8080)), id("spiffe://td/a")),
                (m("10.0.0.0/16", None), id("spiffe://td/b")),
            ],
            passthrough: vec![m("10.0.0.9/32", Some(8080))],
            default_id: id("spiffe://td/*"),
        };
        assert_eq!(t.route(dst("10.0.0.9:8080")), Route::Passthrough);
        assert_eq!(t.route(dst("10.0.0.9:8081")), Route::Mapped(1));
        assert_eq!(t.route(dst("10.0.0.5:8080")), Route::Mapped(0));
        assert_eq!(t.route(dst("10.1.0.5:8080")), Route::Default);
        assert_eq!(t.patterns().len(), 3);
    }
}
