//! The Kubernetes manifests of deploy/kubernetes as `podman kube play` can run them: the one
//! transformation `make kube-test` applies, kept small, written down in docs/operations.md
//! ("What `make kube-test` proves") and unit-tested (`tests/tests/kube_play.rs`). What podman
//! runs is kept as shipped: images (renamed to the locally built ones), args, env, security
//! contexts, init containers, the files ConfigMaps and Secrets hold, claims.
//!
//! What podman 4.3 does not have, and what stands in for it:
//! - **Services**: no virtual IPs. Each pod gets a fixed address; every Service's names
//!   (`NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.cluster.local`, and `NAME` in its namespace)
//!   become `hostAliases` of every pod, pointing at the pod the selector picks; a Service
//!   whose `port` differs from its target port is refused (nothing would translate it).
//! - **Deployments** become one Pod each (`replicas` is not honoured).
//! - **Native sidecars** (init containers with `restartPolicy: Always`) become the first
//!   ordinary containers: podman waits for every init container to exit.
//! - **restartPolicy** is `OnFailure`: podman 4.3 applies a pod's `Always` to its init
//!   containers too and restarts one that finished, for ever.
//! - **Container ports** are taken out: podman would publish each on the host too. Pods are
//!   reached at their own addresses, as in a cluster.
//! - **Probes** are taken out and returned: podman turns an `httpGet` probe into a `curl` run
//!   inside the container (there is no curl in ward's images) on a systemd timer. The test
//!   runs them from outside against the pod's address, as a kubelet does.
//! - **Volumes** other than claims (see `kube_play_volumes.rs`): ConfigMaps, Secrets,
//!   projected service-account tokens, the automounted service-account volume and emptyDirs
//!   are directories written by the test and mounted with `hostPath`, in the kubelet's layout
//!   and with its owners and modes.
//! - **Namespaces, ServiceAccounts, RBAC, NetworkPolicy, PodDisruptionBudget** are dropped and
//!   listed: there is no API server and nothing enforces policies between pods.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

#[path = "kube_play_services.rs"]
mod services;
#[path = "kube_play_volumes.rs"]
mod volumes;

use services::{container_port, host_aliases};

pub use volumes::{mode_of, update_files, SERVICE_ACCOUNT_DIR};

/// What the transformation needs from the test.
pub struct Options<'a> {
    /// Images under this prefix (`ghcr.io/ward/`) become `localhost/NAME:TAG`; any other image
    /// is refused, since podman would pull it.
    pub image_prefix: &'a str,
    /// The tag of the locally built images.
    pub tag: &'a str,
    /// Prepended to every pod and volume name, so a run never meets another's.
    pub prefix: &'a str,
    /// The address of the n-th pod (in document order).
    pub pod_ip: &'a dyn Fn(usize) -> Ipv4Addr,
    /// Extra names every pod resolves (`kubernetes.default.svc` for a stand-in API server).
    pub extra_hosts: Vec<(String, Ipv4Addr)>,
    /// Secret name -> file name -> content (what `kubectl create secret` would hold).
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// A projected service-account token: (namespace, service account, audience) -> JWT.
    pub token: &'a dyn Fn(&str, &str, &str) -> String,
    /// The API server's CA certificate (PEM), for the automounted `ca.crt`.
    pub api_ca_pem: String,
    /// The audience of automounted tokens (the API server's own).
    pub api_audience: &'a str,
    /// Where Secret and token files are written (one directory per pod and volume).
    pub files: &'a Path,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A probe of the manifests, to run from outside: `GET http://IP:PORT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `readinessProbe`, `startupProbe` or `livenessProbe`.
    pub kind: String,
    /// The container it belongs to.
    pub container: String,
    /// The port number (a named port resolved).
    pub port: u16,
    /// The path.
    pub path: String,
}

/// One pod to play: its name in podman, its address, and the documents to hand to
/// `podman kube play` (the ConfigMaps, the claims it uses, the Pod), as JSON documents.
#[derive(Debug)]
pub struct PodPlay {
    /// The Deployment's (or Pod's) name in the manifests.
    pub name: String,
    /// Its namespace in the manifests.
    pub namespace: String,
    /// The pod's name in podman (prefixed).
    pub pod: String,
    /// Its address on the test's network.
    pub ip: Ipv4Addr,
    /// The YAML stream for `podman kube play`.
    pub yaml: String,
    /// The probes taken out of it.
    pub probes: Vec<Probe>,
    /// The podman volumes its claims create (prefixed).
    pub volumes: Vec<String>,
}

/// The result: pods in document order, and what was dropped (kind namespace/name).
#[derive(Debug)]
pub struct Played {
    /// One per Deployment or Pod.
    pub pods: Vec<PodPlay>,
    /// The documents with no podman equivalent.
    pub dropped: Vec<String>,
}

const DROPPED: [&str; 9] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Kustomization",
];

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn qualified(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        text(doc, "/kind"),
        text(doc, "/metadata/namespace"),
        text(doc, "/metadata/name")
    )
}

/// Reads every `*.yaml` of each directory (not kustomization.yaml), in name order.
pub fn read_dirs(dirs: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "yaml")
                    && p.file_name().is_some_and(|n| n != "kustomization.yaml")
            })
            .collect();
        files.sort();
        for file in files {
            let raw =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let parsed: Vec<Value> = serde_saphyr::from_multiple(&raw)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            docs.extend(parsed.into_iter().filter(|d| !d.is_null()));
        }
    }
    Ok(docs)
}

/// The transformation (see the module docs).
pub fn transform(docs: &[Value], opts: &Options<'_>) -> Result<Played, String> {
    let mut config_maps = BTreeMap::new();
    let mut claims = BTreeMap::new();
    let mut services = Vec::new();
    let mut workloads = Vec::new();
    let mut dropped = Vec::new();
    let mut service_accounts = BTreeMap::new();
    for doc in docs {
        match text(doc, "/kind") {
            "ConfigMap" => {
                let data = doc
                    .get("data")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()))
                    .collect();
                if doc.get("binaryData").is_some() {
                    return Err(format!("{}: binaryData is not supported", qualified(doc)));
                }
                config_maps.insert(
                    (
                        text(doc, "/metadata/namespace").to_owned(),
                        text(doc, "/metadata/name").to_owned(),
                    ),
                    data,
                );
            }
            "PersistentVolumeClaim" => {
                claims.insert(text(doc, "/metadata/name").to_owned(), doc.clone());
            }
            "Service" => services.push(doc.clone()),
            "Deployment" | "Pod" => workloads.push(doc.clone()),
            "ServiceAccount" => {
                let automount = doc
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                service_accounts.insert(
                    (
                        text(doc, "/metadata/namespace").to_owned(),
                        text(doc, "/metadata/name").to_owned(),
                    ),
                    automount,
                );
                dropped.push(qualified(doc));
            }
            kind if DROPPED.contains(&kind) => dropped.push(qualified(doc)),
            _ => return Err(format!("{}: no podman equivalent known", qualified(doc))),
        }
    }
    let mut pods: Vec<(Value, String, Ipv4Addr)> = Vec::new();
    for (n, doc) in workloads.iter().enumerate() {
        let namespace = text(doc, "/metadata/namespace").to_owned();
        let pod = if text(doc, "/kind") == "Deployment" {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": doc.pointer("/spec/template/metadata").cloned().unwrap_or(json!({})),
                "spec": doc.pointer("/spec/template/spec").cloned().ok_or_else(|| format!("{}: no pod template", qualified(doc)))?,
            })
        } else {
            doc.clone()
        };
        let mut pod = pod;
        pod["metadata"]["name"] = json!(text(doc, "/metadata/name"));
        pods.push((pod, namespace, (opts.pod_ip)(n)));
    }
    let hosts = host_aliases(&services, &pods, &opts.extra_hosts)?;
    let mut out = Vec::new();
    for (mut pod, namespace, ip) in pods {
        let name = text(&pod, "/metadata/name").to_owned();
        let podman_name = format!("{}{name}", opts.prefix);
        let aliases = hosts
            .iter()
            .filter(|(ns, _, _)| ns.is_empty() || *ns == namespace)
            .map(|(_, host, ip)| (host.clone(), *ip));
        let sa = text(&pod, "/spec/serviceAccountName").to_owned();
        let sa = if sa.is_empty() { "default".into() } else { sa };
        let automount = pod
            .pointer("/spec/automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                service_accounts
                    .get(&(namespace.clone(), sa.clone()))
                    .copied()
            })
            .unwrap_or(true);
        let probes = rewrite_pod(&mut pod, &podman_name, aliases.collect(), opts)?;
        let ctx = volumes::Context {
            pod: &podman_name,
            namespace: &namespace,
            service_account: &sa,
            opts,
            config_maps: &config_maps,
        };
        let mut docs = Vec::new();
        let used = volumes::rewrite(&mut pod, &ctx, automount)?;
        let mut podman_volumes = Vec::new();
        for claim in used {
            let mut doc = strip_namespace(
                claims
                    .get(&claim)
                    .cloned()
                    .ok_or_else(|| format!("pod {name}: no PersistentVolumeClaim {claim}"))?,
            );
            let podman_claim = format!("{}{claim}", opts.prefix);
            doc["metadata"]["name"] = json!(podman_claim);
            podman_volumes.push(podman_claim);
            docs.push(doc);
        }
        pod["metadata"]["name"] = json!(podman_name);
        docs.push(strip_namespace(pod));
        let yaml = docs
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n---\n");
        out.push(PodPlay {
            name,
            namespace,
            pod: podman_name,
            ip,
            yaml,
            probes,
            volumes: podman_volumes,
        });
    }
    Ok(Played { pods: out, dropped })
}

fn strip_namespace(mut doc: Value) -> Value {
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
    }
    doc
}

/// Sidecars, restart policy, probes, images, host aliases; returns the probes.
fn rewrite_pod(
    pod: &mut Value,
    name: &str,
    aliases: Vec<(String, Ipv4Addr)>,
    opts: &Options<'_>,
) -> Result<Vec<Probe>, String> {
    let snapshot = pod.clone();
    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("pod {name}: no spec"))?;
    let inits = spec
        .remove("initContainers")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let (sidecars, inits): (Vec<Value>, Vec<Value>) = inits
        .into_iter()
        .partition(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"));
    let mut containers: Vec<Value> = sidecars;
    containers.extend(
        spec.remove("containers")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default(),
    );
    let mut probes = Vec::new();
    for c in containers.iter().chain(inits.iter()) {
        let cname = text(c, "/name");
        for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let Some(probe) = c.get(kind) else {
                continue;
            };
            let port = match probe.pointer("/httpGet/port") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(named)) => container_port(&snapshot, named),
                _ => None,
            }
            .ok_or_else(|| format!("pod {name}: {cname}'s {kind} is not an httpGet probe"))?;
            probes.push(Probe {
                kind: kind.into(),
                container: cname.to_owned(),
                port: u16::try_from(port).map_err(|_| format!("port {port}"))?,
                path: text(probe, "/httpGet/path").to_owned(),
            });
        }
    }
    let mut inits = inits;
    for c in containers.iter_mut().chain(inits.iter_mut()) {
        let obj = c.as_object_mut().ok_or("a container is not a mapping")?;
        // podman publishes every containerPort on the host as well: the pods are reached
        // at their own addresses instead, as in a cluster.
        for field in [
            "restartPolicy",
            "ports",
            "startupProbe",
            "readinessProbe",
            "livenessProbe",
        ] {
            obj.remove(field);
        }
        let image = obj.get("image").and_then(Value::as_str).unwrap_or("");
        let local = image
            .strip_prefix(opts.image_prefix)
            .and_then(|rest| rest.split(':').next())
            .ok_or_else(|| format!("pod {name}: image {image} would be pulled from a registry"))?;
        obj.insert(
            "image".into(),
            json!(format!("localhost/{local}:{}", opts.tag)),
        );
    }
    spec.insert("containers".into(), Value::Array(containers));
    if !inits.is_empty() {
        spec.insert("initContainers".into(), Value::Array(inits));
    }
    spec.insert("restartPolicy".into(), json!("OnFailure"));
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    for (host, ip) in aliases {
        by_ip.entry(ip).or_default().push(host);
    }
    spec.insert(
        "hostAliases".into(),
        Value::Array(
            by_ip
                .into_iter()
                .map(|(ip, hostnames)| json!({"ip": ip.to_string(), "hostnames": hostnames}))
                .collect(),
        ),
    );
    for field in ["serviceAccountName", "automountServiceAccountToken"] {
        spec.remove(field);
    }
    Ok(probes)
}
