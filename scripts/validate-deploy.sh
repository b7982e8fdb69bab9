#!/usr/bin/env bash
# Part of `make test`: validates what deploy/ ships, the way an operator's tools would see it.
#  1. Every Kubernetes manifest against the Kubernetes API schemas (kubernetes-validate, in a
#     virtualenv under target/ that is created when missing), strictly: unknown fields fail.
#  2. Every ward config in deploy/, docs/ and the demo passes the real binaries' `check`
#     (scripts/check_deploy.py; the demo checks its own configs as it starts them).
#  3. The systemd units pass `systemd-analyze verify` (unknown keys and bad values fail), with
#     ExecStart pointed at the binaries just built.
#  4. deploy/monitoring: the alert rules pass `promtool check rules` and their unit tests
#     (`promtool test rules`), and every dashboard query parses (scripts/check_monitoring.py).
#  5. What ward-inject makes of deploy/kubernetes/demo-inject, against the same schemas.
# Needs target/debug/ward-ca, ward-proxy and ward-inject (the Makefile builds them first).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
k8s_version=1.30.0
venv="$root/target/venv"
kv="$venv/bin/kubernetes-validate"

if [ ! -x "$kv" ]; then
  # Debian's python3 needs python3-venv for ensurepip.
  python3 -c 'import ensurepip' 2>/dev/null || bash scripts/ensure-tools.sh python3-venv
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.31.0"
fi

# Kustomize patches (*.patch.yaml) are partial by design; check_deploy.py checks the ward
# configs inside them.
mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml ! -name '*.patch.yaml' | sort)
[ "${#manifests[@]}" -gt 0 ] || { echo "no manifests under deploy/kubernetes" >&2; exit 1; }
"$kv" --strict --quiet --kubernetes-version "$k8s_version" "${manifests[@]}"
echo "kubernetes manifests valid against Kubernetes $k8s_version: ${#manifests[@]} files"

# What ward-inject makes of demo-inject (the pods it patches) is held to the same schemas.
injected="$(mktemp -d)"
for f in deploy/kubernetes/demo-inject/{namespace,backend,frontend}.yaml; do echo '---'; cat "$f"; done |
  target/debug/ward-inject file - --config deploy/inject/inject.yaml > "$injected/injected.yaml" 2>/dev/null
"$kv" --strict --quiet --kubernetes-version "$k8s_version" "$injected/injected.yaml"
rm -rf "$injected"
echo "ward-inject's output for demo-inject valid against Kubernetes $k8s_version"

"$venv/bin/python" scripts/check_deploy.py
units="$(mktemp -d)"
trap 'rm -rf "$units"' EXIT
for unit in deploy/systemd/*.service; do
  name="$(basename "$unit")"
  # A template is verified as an instance of itself.
  [[ "$name" == *@.service ]] && name="${name/@./@check.}"
  sed -e "s#/usr/local/bin/#$root/target/debug/#g" "$unit" > "$units/$name"
  out="$(systemd-analyze verify "$units/$name" 2>&1)" || true
  if [ -n "$out" ]; then
    echo "$unit: systemd-analyze verify:" >&2; echo "$out" >&2; exit 1
  fi
done
echo "systemd units verified: $(ls deploy/systemd/*.service | wc -l)"

python3 scripts/check_monitoring.py
