#!/usr/bin/env bash
# Installs the named command-line tools from Debian packages if they are not on PATH.
# Used by the Makefile so `make test` and `make demo` work on a machine with only Rust.
set -euo pipefail

declare -A package=(
  [openssl]=openssl
  [curl]=curl
  [mkfs.ext4]=e2fsprogs
  [unshare]=util-linux
  [wrk]=wrk
  [nginx]=nginx-light
  [stunnel4]=stunnel4
  [haproxy]=haproxy
  [postgres]=postgresql
  [runuser]=util-linux
  [promtool]=prometheus
  [systemd-analyze]=systemd
  # Containers (make image, make kube-test): podman with the runc runtime (crun refuses a
  # hybrid cgroup layout), netavark's bridge networks (which program iptables), and
  # catatonit, from which podman builds its pause image locally instead of pulling one.
  [podman]=podman
  [runc]=runc
  [netavark]=netavark
  [iptables]=iptables
  [catatonit]=catatonit
  # Transparent interception tests: network namespaces, nftables, running as another uid.
  [ip]=iproute2
  [nft]=nftables
  [setpriv]=util-linux
)

# Debian keeps PostgreSQL's server programs off PATH, under /usr/lib/postgresql/<version>/bin.
have() {
  case "$1" in
    postgres) compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null 2>&1 ;;
    # podman finds its network helper off PATH.
    netavark) [ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for tool in "$@"; do
  have "$tool" || missing+=("${package[$tool]:-$tool}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing missing tools: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
