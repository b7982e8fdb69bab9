"""Checks every ward config shipped in deploy/, docs/ and the demo with the real binaries.

Run by scripts/validate-deploy.sh (part of `make test`). Kubernetes manifests carry their
ward configs inside ConfigMaps; those are written out to a temporary tree that mirrors the
pod's mount paths (the ConfigMap volume's mountPath), with absolute paths inside the configs
moved under that tree, and then checked exactly like files on a host:
`ward-proxy check --config` (config and its policy) and `ward-ca check --config`.
Also checks that every kustomization lists files that exist. Exits non-zero on any failure.
"""

import pathlib
import subprocess
import sys
import tempfile

import yaml  # PyYAML comes with kubernetes-validate

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "debug"
failures = []
checked = []


def run(binary, config, label):
    proc = subprocess.run(
        [str(BIN / binary), "check", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    checked.append(label)
    if proc.returncode != 0:
        failures.append(f"{label}: {binary} check failed:\n{proc.stderr.strip()}")


def kind_of(text):
    """Which binary's config a YAML text is: ward-ca has state (and ca_dir, unless its keys
    are in PostgreSQL), ward-proxy has policy."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return None
    if "ca_dir" in doc or ("state" in doc and "listen" in doc):
        return "ward-ca"
    if "policy" in doc and "trust_domain" in doc:
        return "ward-proxy"
    return None


def check_manifests(tmp):
    """ConfigMaps in deploy/kubernetes, written where their pods mount them."""
    docs = []
    for path in sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
        if path.name == "kustomization.yaml":
            kustomization = yaml.safe_load(path.read_text())
            listed = kustomization.get("resources", [])
            listed += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
            for res in listed:
                if not (path.parent / res).exists():
                    failures.append(f"{path.relative_to(ROOT)}: lists missing {res}")
    # Where each ConfigMap is mounted: (namespace, name) -> mountPath.
    mounts = {}
    for _, doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        ns = doc["metadata"].get("namespace")
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                if "configMap" in v:
                    mounts[(ns, v["configMap"]["name"])] = m["mountPath"]
        # ward-inject mounts the ConfigMap `ward.dev/policy` names at /etc/ward/policy.
        annotations = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        if "ward.dev/policy" in annotations:
            mounts[(ns, annotations["ward.dev/policy"])] = "/etc/ward/policy"
    configs = []
    for n, (path, doc) in enumerate(docs):
        if doc.get("kind") != "ConfigMap":
            continue
        key = (doc["metadata"].get("namespace"), doc["metadata"]["name"])
        mount = mounts.get(key)
        if mount is None:
            failures.append(f"{path.relative_to(ROOT)}: ConfigMap {key[1]} is mounted by no Deployment")
            continue
        # Each ConfigMap gets its own tree: pods mount different ConfigMaps at the same path,
        # and an overlay's patch carries another version of a base's ConfigMap.
        tree = tmp / (key[0] or "default") / key[1] / str(n)
        base = tree / mount.lstrip("/")
        base.mkdir(parents=True, exist_ok=True)
        for name, text in doc.get("data", {}).items():
            moved = text.replace(" /etc/", f" {tree}/etc/").replace('"/etc/', f'"{tree}/etc/')
            (base / name).write_text(moved)
            kind = kind_of(text)
            if kind:
                configs.append((kind, base / name, f"{path.relative_to(ROOT)}: {key[1]}/{name}"))
    for kind, config, label in configs:
        run(kind, config, label)


def check_files(tmp):
    """Config files on disk: systemd examples (absolute paths moved under tmp) and docs."""
    sysd = ROOT / "deploy" / "systemd"
    etc = tmp / "etc" / "ward"
    (etc / "proxy").mkdir(parents=True, exist_ok=True)
    for path in sorted(sysd.rglob("*.yaml")):
        rel = path.relative_to(sysd)
        text = path.read_text().replace(" /etc/ward/", f" {etc}/")
        (etc / rel).write_text(text)
    for path in sorted(sysd.rglob("*.yaml")):
        kind = kind_of(path.read_text())
        if kind:
            run(kind, etc / path.relative_to(sysd), str(path.relative_to(ROOT)))
    for path in [ROOT / "docs" / "examples" / "proxy.yaml"]:
        run("ward-proxy", path, str(path.relative_to(ROOT)))


def check_ca_docs(tmp):
    """The daemon config shown in docs/ca.md."""
    text = (ROOT / "docs" / "ca.md").read_text()
    blocks = [b.split("```")[0] for b in text.split("```yaml\n")[1:]]
    for i, block in enumerate(blocks):
        if kind_of(block) == "ward-ca":
            config = tmp / f"ca-doc-{i}.yaml"
            config.write_text(block)
            run("ward-ca", config, f"docs/ca.md block {i + 1}")


def main():
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        check_manifests(tmp)
        check_files(tmp)
        check_ca_docs(tmp)
    for f in failures:
        print(f, file=sys.stderr)
    print(f"ward configs checked: {len(checked)} ({', '.join(checked)})")
    if not checked:
        print("no ward configs found", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
