//! Services under `podman kube play` (see `kube_play.rs`): no virtual IPs, so each Service's
//! names resolve, through every pod's `hostAliases`, to the one pod its selector picks, and a
//! Service that would translate a port is refused.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::{qualified, text};

/// (namespace for short names, or "" for all; host name; address) for every Service name.
pub(super) fn host_aliases(
    services: &[Value],
    pods: &[(Value, String, Ipv4Addr)],
    extra: &[(String, Ipv4Addr)],
) -> Result<Vec<(String, String, Ipv4Addr)>, String> {
    let mut hosts: Vec<(String, String, Ipv4Addr)> = extra
        .iter()
        .map(|(h, ip)| (String::new(), h.clone(), *ip))
        .collect();
    for svc in services {
        let (name, ns) = (
            text(svc, "/metadata/name"),
            text(svc, "/metadata/namespace"),
        );
        let selector = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{}: no selector", qualified(svc)))?;
        let target = pods.iter().find(|(pod, pod_ns, _)| {
            pod_ns == ns
                && selector
                    .iter()
                    .all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
        });
        let Some((pod, _, ip)) = target else {
            return Err(format!("{}: selects no pod", qualified(svc)));
        };
        for port in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
            let target = port.get("targetPort").unwrap_or(&Value::Null);
            let resolved = match target {
                Value::Null => number,
                Value::Number(n) => n.as_u64().unwrap_or(0),
                Value::String(named) => container_port(pod, named).ok_or_else(|| {
                    format!("{}: no container port named {named}", qualified(svc))
                })?,
                _ => 0,
            };
            if resolved != number {
                return Err(format!(
                    "{}: port {number} targets {resolved}; without Services nothing translates it",
                    qualified(svc)
                ));
            }
        }
        for host in [
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ] {
            hosts.push((String::new(), host, *ip));
        }
        hosts.push((ns.to_owned(), name.to_owned(), *ip));
    }
    Ok(hosts)
}

/// Every container of the pod, init containers included.
fn all_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["/spec/initContainers", "/spec/containers"]
        .into_iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
}

pub(super) fn container_port(pod: &Value, named: &str) -> Option<u64> {
    all_containers(pod)
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(named))
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
}
