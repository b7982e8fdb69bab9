#!/usr/bin/env bash
# `make bench-images`: the images `make image` built (localhost/NAME:IMAGE_TAG), measured:
# their sizes, the time to run `--version` in a new container, the time from `podman run` of
# the CA (`serve`, a fresh SQLite state) to its /readyz answering 200, and the time from
# `podman run` of a sidecar (join token, one inbound listener) to its /ready answering 200,
# which includes its first enrollment at that CA. Medians of RUNS (default 5) runs, each in
# new containers, on a podman network of its own (--internal, removed at the end). Prints a
# markdown table for docs/benchmarks.md. Not part of `make test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
podman="$root/scripts/podman.sh"
tag="${IMAGE_TAG:-dev}"
runs="${RUNS:-5}"
work="$(mktemp -d -t ward-bench-images.XXXXXX)"
net="wardbench$$"
containers=()
cleanup() {
  for c in "${containers[@]}"; do "$podman" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  "$podman" network rm -f "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for n in $(seq 150 199); do
  if "$podman" network create --internal --disable-dns --subnet "10.89.$n.0/24" \
    --gateway "10.89.$n.1" "$net" >/dev/null 2>&1; then
    break
  fi
done
prefix="$("$podman" network inspect --format '{{range .Subnets}}{{.Gateway}}{{end}}' "$net")"
prefix="${prefix%.1}"

now_ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Milliseconds until URL answers 200 (gives up after 60 s).
until_200() {
  local url=$1 start=$2
  for _ in $(seq 1 6000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ]; then
      echo $(($(now_ms) - start))
      return 0
    fi
    sleep 0.01
  done
  echo "never ready: $url" >&2
  return 1
}

version=() ca_ready=() proxy_ready=()
for run in $(seq 1 "$runs"); do
  for image in ward-ca ward-proxy ward-demo-app ward-intercept; do
    start=$(now_ms)
    "$podman" run --rm "localhost/$image:$tag" --version >/dev/null
    version+=("$image $(($(now_ms) - start))")
  done

  dir="$work/$run"
  mkdir -p "$dir"
  "$root/target/release/ward-ca" init --dir "$dir/ca" --trust-domain example.org >/dev/null 2>&1 ||
    "$podman" run --rm --user 0 -v "$dir:/w" "localhost/ward-ca:$tag" init --dir /w/ca --trust-domain example.org >/dev/null 2>&1
  cat > "$dir/ca.yaml" <<EOF
trust_domain: example.org
ca_dir: /w/ca
listen: "0.0.0.0:8443"
ops: "0.0.0.0:9902"
state: /w/state.db
dns_names: [ca.bench]
EOF
  chown -R 65532:65532 "$dir"
  ca_ip="$prefix.10"
  ca="wardbench$$-ca-$run"
  containers+=("$ca")
  start=$(now_ms)
  "$podman" run -d --name "$ca" --network "$net" --ip "$ca_ip" --read-only -v "$dir:/w" \
    "localhost/ward-ca:$tag" serve --config /w/ca.yaml >/dev/null
  ca_ready+=("$(until_200 "http://$ca_ip:9902/readyz" "$start")")

  "$podman" run --rm -v "$dir:/w" "localhost/ward-ca:$tag" token create --config /w/ca.yaml \
    --id spiffe://example.org/ns/bench/sa/app --ttl 10m > "$dir/token" 2>/dev/null
  chown 65532:65532 "$dir/token"
  printf 'rules: []\n' > "$dir/policy.yaml"
  cat > "$dir/proxy.yaml" <<EOF
trust_domain: example.org
identity:
  ca: { url: "https://ca.bench:8443", bundle: /w/ca/bundle.pem, token_file: /w/token }
policy: /w/policy.yaml
inbound:
  - { name: api, listen: "0.0.0.0:8443", forward: "127.0.0.1:8080" }
admin: "0.0.0.0:9901"
EOF
  proxy="wardbench$$-proxy-$run"
  containers+=("$proxy")
  start=$(now_ms)
  "$podman" run -d --name "$proxy" --network "$net" --ip "$prefix.11" --read-only \
    --add-host "ca.bench:$ca_ip" -v "$dir:/w" "localhost/ward-proxy:$tag" \
    run --config /w/proxy.yaml >/dev/null
  proxy_ready+=("$(until_200 "http://$prefix.11:9901/ready" "$start")")
  "$podman" rm -f -t 0 "$proxy" "$ca" >/dev/null
done

echo "| image | size | \`--version\` in a new container | \`podman run\` to ready |"
echo "|---|---|---|---|"
for image in ward-ca ward-proxy ward-demo-app ward-intercept; do
  size="$("$podman" image inspect --format '{{.Size}}' "localhost/$image:$tag")"
  v="$(printf '%s\n' "${version[@]}" | awk -v i="$image" '$1 == i { print $2 }' | median)"
  case "$image" in
    ward-ca) ready="$(printf '%s\n' "${ca_ready[@]}" | median) ms (\`serve\`, new SQLite state, /readyz)" ;;
    ward-proxy) ready="$(printf '%s\n' "${proxy_ready[@]}" | median) ms (\`run\`, enrolls with a join token, /ready)" ;;
    *) ready="-" ;;
  esac
  printf '| %s | %s MB | %s ms | %s |\n' "$image" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }')" "$v" "$ready"
done
echo
echo "(medians of $runs runs; \`make bench-images\`, images of $(git -C "$root" rev-parse --short HEAD))"
