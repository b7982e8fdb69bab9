//! The volumes of a pod under `podman kube play` (see `kube_play.rs`). Claims are podman
//! volumes, renamed with the run's prefix. Everything else is a directory written here and
//! mounted with `hostPath`, because podman 4.3 keeps ConfigMap volumes as named volumes that
//! outlive the pod (and are shared by every pod naming the same ConfigMap) and did not give a
//! pod's containers one shared emptyDir. ConfigMaps, Secrets and tokens are laid out as the
//! kubelet's atomic writer does (`..data` a symlink to a timestamped directory, each file a
//! symlink through it), owned and moded as the kubelet would; an emptyDir is an empty 0777
//! directory of the pod's own (on disk, whatever its `medium`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};

use super::Options;

/// Where the kubelet mounts the API credentials of a pod's service account.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The pod being rewritten.
pub(super) struct Context<'a> {
    pub pod: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub opts: &'a Options<'a>,
    /// (namespace, name) -> file -> content, of every ConfigMap in the manifests.
    pub config_maps: &'a BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

/// A file mode as Kubernetes reads the YAML: `0400` is octal there (YAML 1.1). serde-saphyr
/// (YAML 1.2) reads a leading-zero integer as a float with the same digits, so a float whose
/// digits are all octal is taken as octal; an integer is a plain number (`256`).
pub fn mode_of(v: &Value) -> Option<u32> {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).ok();
    }
    let f = v.as_f64()?;
    if f.fract() != 0.0 || !(0.0..=7777.0).contains(&f) {
        return None;
    }
    u32::from_str_radix(&format!("{f:.0}"), 8).ok()
}

fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32, owner: (u32, u32)) -> Result<(), String> {
    let path = dir.join(name);
    fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    chown(&path, Some(owner.0), Some(owner.1)).map_err(|e| format!("{}: {e}", path.display()))
}

fn host_dir(ctx: &Context<'_>, volume: &str, mode: u32) -> Result<std::path::PathBuf, String> {
    let dir = ctx.opts.files.join(ctx.pod).join(volume);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `files` in `dir` as the kubelet writes a ConfigMap, Secret or projected volume:
/// `..TIMESTAMP/NAME`, `..data -> ..TIMESTAMP`, `NAME -> ..data/NAME`.
fn atomic_files(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    mode: u32,
    owner: (u32, u32),
) -> Result<(), String> {
    let stamp = "..2026_01_01_00_00_00.000000001";
    let data = dir.join(stamp);
    fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", data.display()))?;
    for (name, bytes) in files {
        write(&data, name, bytes, mode, owner)?;
        symlink(Path::new("..data").join(name), dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
    }
    symlink(stamp, dir.join("..data")).map_err(|e| format!("{}: {e}", dir.display()))
}

/// A ConfigMap or Secret volume's `defaultMode` (0644 when it has none).
fn default_mode(source: &Value, ctx: &Context<'_>, volume: &str) -> Result<u32, String> {
    source
        .get("defaultMode")
        .map_or(Some(0o644), mode_of)
        .ok_or_else(|| {
            format!(
                "pod {}: volume {volume}: defaultMode is not a file mode",
                ctx.pod
            )
        })
}

fn host_path(dir: &Path) -> Value {
    json!({"path": dir.display().to_string(), "type": "Directory"})
}

/// Rewrites `spec.volumes` (and, with `automount`, every container's mounts); returns the
/// claims the pod uses (their names in the manifests).
pub(super) fn rewrite(
    pod: &mut Value,
    ctx: &Context<'_>,
    automount: bool,
) -> Result<Vec<String>, String> {
    let security = pod
        .pointer("/spec/securityContext")
        .cloned()
        .unwrap_or(json!({}));
    let fs_group = security
        .get("fsGroup")
        .and_then(Value::as_u64)
        .map(|g| g as u32);
    let pod_user = security.get("runAsUser").and_then(Value::as_u64);
    // Tokens: the kubelet gives them (0600) to the pod's one user when every container runs
    // as the same one; when they differ (an injected sidecar runs as its own uid), the file
    // keeps the projected volume's default, root-owned 0644.
    let users: std::collections::BTreeSet<u64> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .map(|c| {
            c.pointer("/securityContext/runAsUser")
                .and_then(Value::as_u64)
                .or(pod_user)
                .unwrap_or(0)
        })
        .collect();
    let (token_mode, run_as) = match users.iter().next() {
        Some(uid) if users.len() == 1 => (0o600, *uid as u32),
        _ => (0o644, 0),
    };
    let mut claims = Vec::new();
    let mut volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for volume in &mut volumes {
        let name = volume
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let obj = volume.as_object_mut().ok_or("a volume is not a mapping")?;
        if obj.remove("emptyDir").is_some() {
            let dir = host_dir(ctx, &name, 0o777)?;
            obj.insert("hostPath".into(), host_path(&dir));
            continue;
        }
        if let Some(map) = obj.remove("configMap") {
            let map_name = map.get("name").and_then(Value::as_str).unwrap_or("");
            let files = ctx
                .config_maps
                .get(&(ctx.namespace.to_owned(), map_name.to_owned()))
                .ok_or_else(|| {
                    format!("pod {}: volume {name}: no ConfigMap {map_name}", ctx.pod)
                })?;
            if map.get("items").is_some() {
                return Err(format!(
                    "pod {}: volume {name}: configMap items are not supported",
                    ctx.pod
                ));
            }
            let mode = default_mode(&map, ctx, &name)?;
            let dir = host_dir(ctx, &name, 0o755)?;
            atomic_files(&dir, files, mode, (0, 0))?;
            obj.insert("hostPath".into(), host_path(&dir));
            continue;
        }
        if let Some(claim) = obj.get_mut("persistentVolumeClaim") {
            let claim_name = claim
                .get("claimName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            claim["claimName"] = json!(format!("{}{claim_name}", ctx.opts.prefix));
            claims.push(claim_name);
            continue;
        }
        if let Some(secret) = obj.remove("secret") {
            let secret_name = secret
                .get("secretName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let files = ctx.opts.secrets.get(secret_name).ok_or_else(|| {
                format!(
                    "pod {}: volume {name}: no Secret {secret_name} given",
                    ctx.pod
                )
            })?;
            let mut mode = default_mode(&secret, ctx, &name)?;
            let owner = (0, fs_group.unwrap_or(0));
            if fs_group.is_some() {
                mode |= 0o440;
            }
            let dir = host_dir(ctx, &name, 0o755)?;
            atomic_files(&dir, files, mode, owner)?;
            obj.insert("hostPath".into(), host_path(&dir));
            continue;
        }
        if let Some(projected) = obj.remove("projected") {
            let dir = host_dir(ctx, &name, 0o755)?;
            let mut files = BTreeMap::new();
            for source in projected
                .get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let token = source.get("serviceAccountToken").ok_or_else(|| {
                    format!(
                        "pod {}: volume {name}: only serviceAccountToken sources are supported",
                        ctx.pod
                    )
                })?;
                let audience = token
                    .get("audience")
                    .and_then(Value::as_str)
                    .unwrap_or(ctx.opts.api_audience);
                let path = token.get("path").and_then(Value::as_str).unwrap_or("token");
                let jwt = (ctx.opts.token)(ctx.namespace, ctx.service_account, audience);
                files.insert(path.to_owned(), jwt.into_bytes());
            }
            atomic_files(&dir, &files, token_mode, (run_as, 0))?;
            obj.insert("hostPath".into(), host_path(&dir));
            continue;
        }
        return Err(format!(
            "pod {}: volume {name}: only configMap, emptyDir, persistentVolumeClaim, secret and projected tokens are supported",
            ctx.pod
        ));
    }
    if automount {
        let dir = host_dir(ctx, "kube-api-access", 0o755)?;
        let jwt = (ctx.opts.token)(ctx.namespace, ctx.service_account, ctx.opts.api_audience);
        let files = BTreeMap::from([
            ("token".to_owned(), jwt.into_bytes()),
            (
                "ca.crt".to_owned(),
                ctx.opts.api_ca_pem.clone().into_bytes(),
            ),
            ("namespace".to_owned(), ctx.namespace.as_bytes().to_vec()),
        ]);
        // The token as above; ca.crt and namespace are public.
        atomic_files(&dir, &files, 0o644, (run_as, 0))?;
        fs::set_permissions(
            dir.join("..data/token"),
            fs::Permissions::from_mode(token_mode),
        )
        .map_err(|e| format!("{}: {e}", dir.display()))?;
        volumes.push(json!({"name": "kube-api-access", "hostPath": host_path(&dir)}));
        for list in ["containers", "initContainers"] {
            let Some(containers) = pod
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for c in containers {
                let mounts = c
                    .as_object_mut()
                    .ok_or("a container is not a mapping")?
                    .entry("volumeMounts")
                    .or_insert_with(|| json!([]));
                if let Some(mounts) = mounts.as_array_mut() {
                    mounts.push(json!({"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": true}));
                }
            }
        }
    }
    pod["spec"]["volumes"] = Value::Array(volumes);
    Ok(claims)
}

/// Changes the files of a ConfigMap volume the way the kubelet does on an update: a new
/// timestamped directory, then `..data` swapped to it in one rename, then the old one
/// removed. A reader never sees a mix of old and new files.
pub fn update_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let old = fs::read_link(dir.join("..data")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let data = dir.join(&stamp);
    fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", data.display()))?;
    for (name, bytes) in files {
        let previous = fs::metadata(dir.join(&old).join(name));
        let (mode, owner) = previous.map_or((0o644, (0, 0)), |m| {
            use std::os::unix::fs::MetadataExt;
            (m.mode() & 0o7777, (m.uid(), m.gid()))
        });
        write(&data, name, bytes, mode, owner)?;
        if !dir.join(name).exists() {
            symlink(Path::new("..data").join(name), dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
        }
    }
    let tmp = dir.join("..data_tmp");
    symlink(&stamp, &tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, dir.join("..data")).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::remove_dir_all(dir.join(old)).map_err(|e| format!("{}: {e}", dir.display()))
}
