//! The nftables ruleset that sends a pod's traffic through its sidecar, as text for `nft -f`.
//!
//! One table, `inet ward`, for IPv4 and IPv6 alike, replaced whole on every run (`add table`
//! then `delete table` then the definition, in one transaction), so a rerun of the init
//! container changes nothing and a half-applied ruleset cannot exist.
//!
//! - `inbound` (nat prerouting): TCP arriving from outside the pod for one of the app's ports
//!   is redirected to the sidecar's inbound listener; loopback and skipped ports are not.
//! - `outbound` (nat output): TCP the pod opens is redirected to the sidecar's outbound
//!   listener when its destination is inside the mesh ranges, unless the sidecar's own uid
//!   opened it (so the sidecar never intercepts itself), it leaves through loopback, or its
//!   destination or port is skipped. Everything else (the internet, the API server, DNS over
//!   UDP) is untouched. A family with no mesh range is not intercepted at all.

use std::fmt::Write;
use std::net::IpAddr;

/// Why a plan is not a ruleset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Not an address range.
    #[error("{0:?} is not an address range (10.0.0.0/8, fd00::/8)")]
    NotARange(String),
    /// A prefix longer than the address.
    #[error("{text:?}: the prefix length must be 0-{max}")]
    Prefix {
        /// The range as written.
        text: String,
        /// 32 or 128.
        max: u8,
    },
    /// A listener port of 0.
    #[error("the sidecar's listener ports must not be 0")]
    ZeroPort,
}

/// What to intercept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The sidecar's uid: its own connections are never redirected.
    pub proxy_uid: u32,
    /// The sidecar's transparent inbound listener port.
    pub inbound_port: u16,
    /// The sidecar's transparent outbound listener port.
    pub outbound_port: u16,
    /// The app's ports whose inbound connections go through the sidecar, each with the
    /// sidecar's listener port for it (`None`: `inbound_port`).
    pub app_ports: Vec<(u16, Option<u16>)>,
    /// Destinations whose outbound connections go through the sidecar.
    pub mesh: Vec<String>,
    /// Ports never redirected, either way.
    pub skip_ports: Vec<u16>,
    /// Destinations never redirected.
    pub skip: Vec<String>,
}

/// Checks `ADDR/BITS` (or a bare address) and says which family it is: `true` for IPv6.
pub fn family(cidr: &str) -> Result<bool, PlanError> {
    let (addr, bits) = cidr.split_once('/').unwrap_or((cidr, ""));
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| PlanError::NotARange(cidr.to_owned()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if !bits.is_empty() && bits.parse::<u8>().map_or(true, |b| b > max) {
        return Err(PlanError::Prefix {
            text: cidr.to_owned(),
            max,
        });
    }
    Ok(ip.is_ipv6())
}

fn set<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", items.join(", "))
}

impl Plan {
    /// The ruleset, or why the plan is not one.
    pub fn ruleset(&self) -> Result<String, PlanError> {
        if self.inbound_port == 0 || self.outbound_port == 0 {
            return Err(PlanError::ZeroPort);
        }
        let mut v4 = (Vec::new(), Vec::new());
        let mut v6 = (Vec::new(), Vec::new());
        for (list, which) in [(&self.mesh, 0), (&self.skip, 1)] {
            for cidr in list {
                let target = if family(cidr)? { &mut v6 } else { &mut v4 };
                if which == 0 {
                    target.0.push(cidr.clone());
                } else {
                    target.1.push(cidr.clone());
                }
            }
        }
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "add table inet ward\ndelete table inet ward\ntable inet ward {{"
        );
        let _ = writeln!(
            w,
            "  chain inbound {{\n    type nat hook prerouting priority dstnat; policy accept;"
        );
        let _ = writeln!(w, "    iifname \"lo\" return");
        if !self.skip_ports.is_empty() {
            let _ = writeln!(w, "    tcp dport {} return", set(&self.skip_ports));
        }
        let mut targets: Vec<(u16, Vec<u16>)> = Vec::new();
        for (port, target) in &self.app_ports {
            let target = target.unwrap_or(self.inbound_port);
            if target == 0 {
                return Err(PlanError::ZeroPort);
            }
            match targets.iter_mut().find(|(t, _)| *t == target) {
                Some((_, ports)) => ports.push(*port),
                None => targets.push((target, vec![*port])),
            }
        }
        for (target, ports) in targets {
            let _ = writeln!(w, "    tcp dport {} redirect to :{target}", set(&ports));
        }
        let _ = writeln!(w, "  }}");
        let _ = writeln!(
            w,
            "  chain outbound {{\n    type nat hook output priority -100; policy accept;"
        );
        let _ = writeln!(w, "    meta skuid {} return", self.proxy_uid);
        let _ = writeln!(w, "    oifname \"lo\" return");
        if !self.skip_ports.is_empty() {
            let _ = writeln!(w, "    tcp dport {} return", set(&self.skip_ports));
        }
        for (proto, key, (mesh, skip)) in [("ipv4", "ip", &v4), ("ipv6", "ip6", &v6)] {
            if mesh.is_empty() {
                let _ = writeln!(w, "    meta nfproto {proto} return");
                continue;
            }
            let _ = writeln!(w, "    {key} daddr != {} return", set(mesh));
            if !skip.is_empty() {
                let _ = writeln!(w, "    {key} daddr {} return", set(skip));
            }
        }
        let _ = writeln!(
            w,
            "    meta l4proto tcp redirect to :{}\n  }}\n}}",
            self.outbound_port
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            proxy_uid: 65533,
            inbound_port: 15006,
            outbound_port: 15001,
            app_ports: vec![(8080, None), (9090, Some(15100))],
            mesh: vec!["10.89.0.0/16".into(), "fd00::/8".into()],
            skip_ports: vec![22],
            skip: vec!["10.89.0.1".into()],
        }
    }

    #[test]
    fn the_ruleset_replaces_one_table_and_spares_the_sidecar_loopback_and_skips() {
        let r = plan().ruleset().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.starts_with("add table inet ward\ndelete table inet ward\n"),
            "{r}"
        );
        for line in [
            "tcp dport { 8080 } redirect to :15006",
            "tcp dport { 9090 } redirect to :15100",
            "meta skuid 65533 return",
            "oifname \"lo\" return",
            "tcp dport { 22 } return",
            "ip daddr != { 10.89.0.0/16 } return",
            "ip daddr { 10.89.0.1 } return",
            "ip6 daddr != { fd00::/8 } return",
            "meta l4proto tcp redirect to :15001",
        ] {
            assert!(r.contains(line), "{line}\n{r}");
        }
        // The sidecar's own traffic returns before anything can redirect it.
        let outbound = &r[r.find("chain outbound").unwrap_or(0)..];
        assert!(
            outbound.find("skuid").unwrap_or(usize::MAX) < outbound.find("redirect").unwrap_or(0)
        );
    }

    #[test]
    fn a_family_without_mesh_ranges_is_left_alone_and_bad_ranges_are_refused() {
        let mut p = plan();
        p.mesh = vec!["10.0.0.0/8".into()];
        let r = p.ruleset().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.contains("meta nfproto ipv6 return"), "{r}");
        p.mesh = vec!["10.0.0.0/40".into()];
        assert!(p.ruleset().is_err());
        p.mesh = vec!["backend".into()];
        assert!(matches!(p.ruleset(), Err(PlanError::NotARange(_))));
    }
}
