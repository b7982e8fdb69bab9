#!/usr/bin/env bash
# `make image`: the ward-ca, ward-proxy, ward-demo-app and ward-intercept OCI images, built from this tree and
# the build host's Debian packages only; no base image, nothing pulled from a registry.
#
# For each binary: `cargo build` (IMAGE_PROFILE, default release), then a context under
# target/image/NAME/rootfs holding the stripped binary at /usr/local/bin/NAME, the shared
# libraries `ldd` says it loads (glibc, libm, libgcc_s) and the ELF interpreter at their own
# paths, and /etc/{passwd,group,nsswitch.conf}; deploy/docker/NAME.Containerfile copies that
# onto `scratch`. Images are tagged localhost/NAME:IMAGE_TAG (default dev) and labelled with
# the OCI source, revision, version and created (the commit's time, so a rebuild of the same
# commit with the same toolchain and packages gives the same layer).
#
#   IMAGE_TAG=dev IMAGE_PROFILE=release|dev IMAGES="ward-ca ward-proxy ward-demo-app ward-intercept"
#   CONTAINER_ENGINE=podman|docker (default: podman, through scripts/podman.sh)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tag="${IMAGE_TAG:-dev}"
profile="${IMAGE_PROFILE:-release}"
images=(${IMAGES:-ward-ca ward-proxy ward-demo-app ward-intercept})
engine="${CONTAINER_ENGINE:-podman}"
source_url="${IMAGE_SOURCE:-https://github.com/ward-dev/ward}"

case "$engine" in
  podman) build=("$root/scripts/podman.sh" build) ;;
  docker) build=(docker build) ;;
  *) echo "CONTAINER_ENGINE=$engine: use podman or docker" >&2; exit 2 ;;
esac
case "$profile" in
  release) out=target/release ;;
  dev) out=target/debug ;;
  *) echo "IMAGE_PROFILE=$profile: use release or dev" >&2; exit 2 ;;
esac

revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"

if [ "$profile" = dev ]; then
  # The build `make build` and `make test` already made: nothing to compile again.
  cargo build --locked --workspace --bins
else
  # Always the three together, whatever IMAGES selects: Cargo unifies features across the
  # packages of one build, so building one alone could link a different binary.
  cargo build --locked --profile "$profile" -p ward-ca --bin ward-ca -p ward-proxy \
    --bin ward-proxy -p ward-demo-app --bin ward-demo-app -p ward-intercept --bin ward-intercept
fi

# Copies FILE (following symlinks) to the same absolute path under ROOTFS.
place() {
  local file=$1 rootfs=$2
  mkdir -p "$rootfs$(dirname "$file")"
  cp -L "$file" "$rootfs$file"
}

for image in "${images[@]}"; do
  ctx="target/image/$image"
  rm -rf "$ctx"
  rootfs="$ctx/rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc"
  strip -o "$rootfs/usr/local/bin/$image" "$out/$image"
  programs=("$out/$image")
  # ward-intercept drives Debian's nft (docs/architecture.md says why).
  if [ "$image" = ward-intercept ]; then
    nft="$(command -v nft || echo /usr/sbin/nft)"
    place "$nft" "$rootfs"
    programs+=("$nft")
  fi
  # Every library the dynamic linker would load, and the linker itself; nothing else.
  while read -r lib; do
    place "$lib" "$rootfs"
  done < <(for p in "${programs[@]}"; do ldd "$p"; done |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
  printf 'root:x:0:0:root:/:/sbin/nologin\nward:x:65532:65532:ward:/nonexistent:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nward:x:65532:\n' > "$rootfs/etc/group"
  # /etc/hosts first: names a pod's hostAliases or the engine's host file give never leave it.
  printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
  # The policy of an injected sidecar whose pod names none: nobody may call it.
  if [ "$image" = ward-proxy ]; then
    mkdir -p "$rootfs/etc/ward"
    printf 'rules: []\n' > "$rootfs/etc/ward/deny-all.yaml"
  fi
  find "$rootfs" -exec touch -h -d "@$epoch" {} +
  labels=(
    --label "org.opencontainers.image.source=$source_url"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.version=$version"
    --label "org.opencontainers.image.created=$created"
  )
  stamp=()
  [ "$engine" = docker ] || stamp=(--timestamp "$epoch")
  previous="$("${build[0]}" image inspect --format '{{.Id}}' "localhost/$image:$tag" 2>/dev/null || true)"
  "${build[@]}" --quiet "${stamp[@]}" "${labels[@]}" \
    -f "deploy/docker/$image.Containerfile" -t "localhost/$image:$tag" "$ctx" >/dev/null
  # The image this tag named before, if no tag names it now: remove it rather than pile
  # them up.
  now="$("${build[0]}" image inspect --format '{{.Id}}' "localhost/$image:$tag")"
  if [ -n "$previous" ] && [ "$previous" != "$now" ] &&
    [ "$("${build[0]}" image inspect --format '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
    "${build[0]}" rmi "$previous" >/dev/null 2>&1 || true
  fi
  size="$("${build[0]}" image inspect --format '{{.Size}}' "localhost/$image:$tag")"
  if [ "$profile" = release ] && [ "$size" -gt $((25 * 1000 * 1000)) ]; then
    echo "localhost/$image:$tag is $size bytes: over the 25 MB budget" >&2
    exit 1
  fi
  echo "built localhost/$image:$tag ($size bytes, $profile build of $revision)"
done
