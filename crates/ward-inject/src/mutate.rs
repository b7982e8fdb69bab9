//! The mutation itself: a pod template that opts in gets, in this order, the interception init
//! container (`ward-intercept`, the only container with a capability: `NET_ADMIN`, root, exits when
//! its rules are in) and the `ward-proxy` native sidecar (an init container with
//! `restartPolicy: Always`: started before the app, stopped after it), with the volumes they
//! need. The app's containers are not touched. The sidecar is what deploy/kubernetes/demo
//! writes by hand (same security context, identity from the projected service-account
//! token), except that it runs as a uid of its own, which the rules exempt, and that its
//! config is generated into its environment (`ward-proxy run --config-env`).
//!
//! Each inbound port becomes a transparent listener `port-<PORT>` (the name policy rules use)
//! on the sidecar's port `15100 + its position`; outbound, one transparent listener `mesh` on
//! 127.0.0.1:15001 takes every TCP connection to the mesh ranges (and `mesh6` on [::1]:15001
//! the IPv6 ones, when a mesh range is IPv6; inbound listeners then bind `[::]`).

use serde_json::{json, Value};

use crate::annotations::{Protocol, Settings, INJECTED};
use crate::config::InjectConfig;

/// The sidecar's outbound listener.
pub const OUTBOUND_PORT: u16 = 15001;
/// The first inbound listener port (one per inbound app port, in order).
pub const FIRST_INBOUND_PORT: u16 = 15100;
/// The sidecar's admin port (probes, metrics).
pub const ADMIN_PORT: u16 = 9901;
/// The policy an injected sidecar without `ward.dev/policy` uses (in the ward-proxy image).
pub const DENY_ALL: &str = "/etc/ward/deny-all.yaml";

/// Whether a template already carries ward's sidecar (injected, or written by hand).
pub fn already_injected(spec: &Value) -> bool {
    ["/initContainers", "/containers"].iter().any(|p| {
        spec.pointer(p)
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == "ward-proxy"))
    })
}

/// The sidecar's config (YAML), as `ward-proxy run --config-env` reads it.
pub fn proxy_config(cfg: &InjectConfig, s: &Settings) -> String {
    let mut y = format!(
        "trust_domain: {}\nidentity:\n  ca: {{ url: \"{}\", bundle: /etc/ward/bundle/bundle.pem, token_file: /var/run/secrets/ward/token }}\n",
        cfg.trust_domain, cfg.ca_url
    );
    let policy = if s.policy.is_some() {
        "/etc/ward/policy/policy.yaml"
    } else {
        DENY_ALL
    };
    y.push_str(&format!("policy: {policy}\n"));
    // With an IPv6 mesh range: inbound listeners take both families on `[::]`, and IPv6
    // outbound connections, which the rules redirect to ::1, get a listener there.
    let ipv6 = cfg.mesh_cidrs.iter().any(|c| c.contains(':'));
    let any = if ipv6 { "[::]" } else { "0.0.0.0" };
    if !s.inbound.is_empty() {
        y.push_str("inbound:\n");
        for (i, (port, protocol)) in s.inbound.iter().enumerate() {
            let protocol = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Http => "http",
            };
            y.push_str(&format!(
                "  - {{ name: port-{port}, protocol: {protocol}, transparent: true, listen: \"{any}:{}\" }}\n",
                FIRST_INBOUND_PORT + i as u16
            ));
        }
    }
    y.push_str(&format!(
        "outbound:\n  - {{ name: mesh, listen: \"127.0.0.1:{OUTBOUND_PORT}\", transparent: {{}} }}\n"
    ));
    if ipv6 {
        y.push_str(&format!(
            "  - {{ name: mesh6, listen: \"[::1]:{OUTBOUND_PORT}\", transparent: {{}} }}\n"
        ));
    }
    y.push_str(&format!("admin: \"{any}:{ADMIN_PORT}\"\n"));
    y
}

/// The interception init container's arguments.
pub fn intercept_args(cfg: &InjectConfig, s: &Settings) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "apply".into(),
        "--proxy-uid".into(),
        cfg.proxy_uid.to_string(),
        "--outbound-port".into(),
        OUTBOUND_PORT.to_string(),
        "--mesh-cidr".into(),
        cfg.mesh_cidrs.join(","),
    ];
    let join = |items: Vec<String>| items.join(",");
    if !s.inbound.is_empty() {
        a.push("--app-port".into());
        a.push(join(
            s.inbound
                .iter()
                .enumerate()
                .map(|(i, (p, _))| format!("{p}:{}", FIRST_INBOUND_PORT + i as u16))
                .collect(),
        ));
    }
    if !s.skip_ports.is_empty() {
        a.push("--skip-port".into());
        a.push(join(s.skip_ports.iter().map(u16::to_string).collect()));
    }
    if !s.skip_cidrs.is_empty() {
        a.push("--skip-cidr".into());
        a.push(join(s.skip_cidrs.clone()));
    }
    a
}

fn restricted() -> Value {
    json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
}

/// Adds the sidecar, the interception init container and their volumes to `spec`.
pub fn inject(spec: &mut Value, cfg: &InjectConfig, s: &Settings) {
    let mut intercept_security = restricted();
    // nftables needs NET_ADMIN alone (netlink); NET_RAW, which iptables-based injectors add,
    // is not asked for.
    intercept_security["capabilities"]["add"] = json!(["NET_ADMIN"]);
    intercept_security["runAsUser"] = json!(0);
    intercept_security["runAsGroup"] = json!(0);
    intercept_security["runAsNonRoot"] = json!(false);
    let intercept = json!({
        "name": "ward-intercept",
        "image": cfg.intercept_image,
        "args": intercept_args(cfg, s),
        "securityContext": intercept_security,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
    });
    let mut proxy_security = restricted();
    proxy_security["runAsUser"] = json!(cfg.proxy_uid);
    proxy_security["runAsGroup"] = json!(cfg.proxy_uid);
    proxy_security["runAsNonRoot"] = json!(true);
    let mut args = vec![
        "run",
        "--config-env",
        "WARD_PROXY_CONFIG",
        "--log-format",
        "json",
    ];
    if let Some(level) = &s.log_level {
        args.extend(["--log-level", level.as_str()]);
    }
    let (cpu, memory) = (
        s.cpu.clone().unwrap_or_else(|| "50m".into()),
        s.memory.clone().unwrap_or_else(|| "32Mi".into()),
    );
    let mut mounts = vec![
        json!({"name": "ward-bundle", "mountPath": "/etc/ward/bundle", "readOnly": true}),
        json!({"name": "ward-token", "mountPath": "/var/run/secrets/ward", "readOnly": true}),
    ];
    if s.policy.is_some() {
        mounts.push(
            json!({"name": "ward-policy", "mountPath": "/etc/ward/policy", "readOnly": true}),
        );
    }
    let probe = |path: &str, period: u32| json!({"httpGet": {"path": path, "port": "ward-admin"}, "periodSeconds": period});
    let mut startup = probe("/ready", 1);
    startup["failureThreshold"] = json!(60);
    let proxy = json!({
        "name": "ward-proxy",
        "image": cfg.proxy_image,
        "restartPolicy": "Always",
        "args": args,
        "env": [{"name": "WARD_PROXY_CONFIG", "value": proxy_config(cfg, s)}],
        "ports": [{"name": "ward-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        "startupProbe": startup,
        "readinessProbe": probe("/ready", 5),
        "livenessProbe": probe("/live", 10),
        "securityContext": proxy_security,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": "1", "memory": "128Mi"}},
        "volumeMounts": mounts,
    });
    let inits = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    spec["initContainers"] = Value::Array([intercept, proxy].into_iter().chain(inits).collect());
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.push(json!({"name": "ward-bundle", "configMap": {"name": cfg.bundle_config_map}}));
    volumes.push(json!({"name": "ward-token", "projected": {"sources": [{"serviceAccountToken": {"audience": cfg.token_audience, "expirationSeconds": 3600, "path": "token"}}]}}));
    if let Some(policy) = &s.policy {
        volumes.push(json!({"name": "ward-policy", "configMap": {"name": policy}}));
    }
    spec["volumes"] = Value::Array(volumes);
}

/// Marks template metadata as injected.
pub fn mark(metadata: &mut Value) {
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = json!({});
    }
    metadata["annotations"][INJECTED] = json!(env!("CARGO_PKG_VERSION"));
}
