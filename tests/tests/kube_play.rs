//! The transformation `make kube-test` applies to deploy/kubernetes before `podman kube play`
//! (`ward_e2e::kube_play`), rule by rule, on the shipped manifests and on small documents:
//! what it changes, and that it refuses what it cannot carry over rather than run something
//! else (an image that would be pulled, a Service whose port is translated, an unknown kind).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use ward_e2e::kube_play::{self, mode_of, Options, Played};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Plays `docs` with tokens `TOKEN(ns/sa/aud)` and one Secret `keys`, into `files`.
fn play(docs: &[Value], files: &Path) -> Result<Played, String> {
    let ip = |n: usize| Ipv4Addr::new(10, 89, 7, 10 + n as u8);
    let token = |ns: &str, sa: &str, aud: &str| format!("TOKEN({ns}/{sa}/{aud})");
    kube_play::transform(
        docs,
        &Options {
            image_prefix: "ghcr.io/ward/",
            tag: "t1",
            prefix: "run-",
            pod_ip: &ip,
            extra_hosts: vec![("kubernetes.default.svc".into(), Ipv4Addr::new(10, 89, 7, 1))],
            secrets: BTreeMap::from([(
                "keys".to_string(),
                BTreeMap::from([("k.pem".to_string(), b"KEY".to_vec())]),
            )]),
            token: &token,
            api_ca_pem: "CA".into(),
            api_audience: "https://api",
            files,
        },
    )
}

fn pod_of(played: &Played, name: &str) -> Value {
    let p = played.pods.iter().find(|p| p.name == name).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&p.yaml).unwrap();
    docs.into_iter().find(|d| d["kind"] == "Pod").unwrap()
}

/// A file's owner, group and mode.
fn stat(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

#[test]
fn leading_zero_modes_are_octal_as_kubernetes_reads_them() {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple("a: 0400\nb: 256\nc: 0644\nd: 0.5\ne: 0800\n").unwrap();
    assert_eq!(mode_of(&docs[0]["a"]), Some(0o400));
    assert_eq!(mode_of(&docs[0]["b"]), Some(256));
    assert_eq!(mode_of(&docs[0]["c"]), Some(0o644));
    assert_eq!(mode_of(&docs[0]["d"]), None);
    assert_eq!(mode_of(&docs[0]["e"]), None);
}

#[test]
fn the_shipped_manifests_become_pods_podman_can_play() {
    let tmp = tempfile::tempdir().unwrap();
    // The test runs as whoever it is: the files get that user (root in CI, 65532 there).
    let me = stat(tmp.path());
    let mut docs = kube_play::read_dirs(&[
        repo().join("deploy/kubernetes/ca"),
        repo().join("deploy/kubernetes/demo"),
    ])
    .unwrap();
    docs.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ward-bundle", "namespace": "ward-demo"}, "data": {"bundle.pem": "B"}}));
    for doc in &mut docs {
        // Own the files as this user, so the test needs no root.
        if let Some(sc) = doc.pointer_mut("/spec/template/spec/securityContext") {
            sc["runAsUser"] = json!(me.0);
            if sc.get("fsGroup").is_some() {
                sc["fsGroup"] = json!(me.1);
            }
        }
    }
    let err = play(&docs, tmp.path()).unwrap_err();
    assert!(err.contains("no Secret ward-ca-keys"), "{err}");
    for doc in &mut docs {
        if let Some(Value::Array(vols)) = doc.pointer_mut("/spec/template/spec/volumes") {
            for v in vols {
                if v.get("secret").is_some() {
                    v["secret"]["secretName"] = json!("keys");
                }
            }
        }
    }
    let played = play(&docs, tmp.path()).unwrap();
    assert_eq!(
        played
            .pods
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["ward-ca", "backend", "frontend"]
    );
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "NetworkPolicy",
    ] {
        assert!(played.dropped.iter().any(|d| d.starts_with(kind)), "{kind}");
    }

    // The CA: its seed init container stays an init container, probes come out, the claim
    // is the run's own volume, the Secret is files with the kubelet's modes.
    let ca = pod_of(&played, "ward-ca");
    assert_eq!(ca["metadata"]["name"], "run-ward-ca");
    assert_eq!(ca["spec"]["restartPolicy"], "OnFailure");
    assert_eq!(ca["spec"]["initContainers"][0]["name"], "seed-ca-dir");
    assert_eq!(
        ca["spec"]["initContainers"][0]["image"],
        "localhost/ward-ca:t1"
    );
    let server = &ca["spec"]["containers"][0];
    assert_eq!(server["image"], "localhost/ward-ca:t1");
    for gone in ["ports", "livenessProbe", "readinessProbe"] {
        assert!(server.get(gone).is_none(), "{gone}");
    }
    let probes = &played.pods[0].probes;
    assert!(probes
        .iter()
        .any(|p| p.kind == "readinessProbe" && p.port == 9902 && p.path == "/readyz"));
    assert_eq!(played.pods[0].volumes, ["run-ward-ca-state"]);
    let volumes = ca["spec"]["volumes"].as_array().unwrap();
    let state = volumes.iter().find(|v| v["name"] == "state").unwrap();
    assert_eq!(
        state["persistentVolumeClaim"]["claimName"],
        "run-ward-ca-state"
    );
    let seed = volumes.iter().find(|v| v["name"] == "seed").unwrap();
    let seed_dir = PathBuf::from(seed["hostPath"]["path"].as_str().unwrap());
    assert_eq!(std::fs::read(seed_dir.join("k.pem")).unwrap(), b"KEY");
    // defaultMode 0400 with an fsGroup: root-owned, group-readable (0440), as the kubelet does.
    assert_eq!(stat(&seed_dir.join("..data/k.pem")), (0, me.1, 0o440));
    assert!(std::fs::symlink_metadata(seed_dir.join("k.pem"))
        .unwrap()
        .is_symlink());
    // automountServiceAccountToken (the ward-ca ServiceAccount): token, ca.crt, namespace.
    let api = volumes
        .iter()
        .find(|v| v["name"] == "kube-api-access")
        .unwrap();
    let api_dir = PathBuf::from(api["hostPath"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(api_dir.join("token")).unwrap(),
        "TOKEN(ward-system/ward-ca/https://api)"
    );
    assert_eq!(
        std::fs::read_to_string(api_dir.join("ca.crt")).unwrap(),
        "CA"
    );
    assert_eq!(stat(&api_dir.join("..data/token")), (me.0, 0, 0o600));
    assert!(server["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"));

    // backend: the native sidecar is the first container; the projected token has the
    // shipped audience; the Service names resolve to the pod's address in every pod.
    let backend = pod_of(&played, "backend");
    assert!(backend["spec"].get("initContainers").is_none());
    let names: Vec<&str> = backend["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ward-proxy", "app"]);
    assert!(backend["spec"]["containers"][0]
        .get("restartPolicy")
        .is_none());
    let token = backend["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ward-token")
        .unwrap();
    let token_dir = PathBuf::from(token["hostPath"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(token_dir.join("token")).unwrap(),
        "TOKEN(ward-demo/backend/ward-ca)"
    );
    assert!(
        backend["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["name"] != "kube-api-access"),
        "backend's ServiceAccount turns automounting off"
    );
    let frontend = pod_of(&played, "frontend");
    let aliases = frontend["spec"]["hostAliases"].as_array().unwrap();
    let to = |ip: &str| -> Vec<String> {
        aliases
            .iter()
            .find(|a| a["ip"] == ip)
            .map(|a| serde_json::from_value(a["hostnames"].clone()).unwrap())
            .unwrap_or_default()
    };
    assert!(to("10.89.7.11").contains(&"backend.ward-demo.svc".to_string()));
    assert!(
        to("10.89.7.11").contains(&"backend".to_string()),
        "same namespace"
    );
    assert!(to("10.89.7.10").contains(&"ward-ca.ward-system.svc".to_string()));
    assert!(
        !to("10.89.7.10").contains(&"ward-ca".to_string()),
        "another namespace"
    );
    assert!(to("10.89.7.1").contains(&"kubernetes.default.svc".to_string()));
    // The ConfigMap is the file the sidecar reads, through the kubelet's symlinks.
    let config = frontend["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ward-config")
        .unwrap();
    let config_dir = PathBuf::from(config["hostPath"]["path"].as_str().unwrap());
    assert!(std::fs::read_to_string(config_dir.join("proxy.yaml"))
        .unwrap()
        .contains("backend.ward-demo.svc:8443"));
}

fn deployment(image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image,
                "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

#[test]
fn what_podman_cannot_carry_over_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = play(&[deployment("nginx:1.27")], tmp.path()).unwrap_err();
    assert!(err.contains("nginx:1.27 would be pulled"), "{err}");

    let service = |target: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target}]}})
    };
    let d = deployment("ghcr.io/ward/ward-proxy:0.1.0");
    let err = play(&[d.clone(), service(json!("http"))], tmp.path()).unwrap_err();
    assert!(err.contains("port 80 targets 8080"), "{err}");
    let ok = play(
        &[d.clone(), {
            let mut s = service(json!("http"));
            s["spec"]["ports"][0]["port"] = json!(8080);
            s
        }],
        tmp.path(),
    );
    assert!(ok.is_ok(), "{ok:?}");

    let mut lonely = service(json!(8080));
    lonely["spec"]["selector"] = json!({"app": "nothing"});
    let err = play(&[d.clone(), lonely], tmp.path()).unwrap_err();
    assert!(err.contains("selects no pod"), "{err}");

    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"}});
    let err = play(&[job], tmp.path()).unwrap_err();
    assert!(err.contains("Job ns/j: no podman equivalent"), "{err}");

    let mut nfs = d;
    nfs["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "n", "nfs": {"server": "x", "path": "/"}}]);
    let err = play(&[nfs], tmp.path()).unwrap_err();
    assert!(err.contains("volume n: only configMap"), "{err}");
}
