#!/usr/bin/env bash
# Runs podman with ward's private containers.conf (target/podman/containers.conf, written here
# when missing), so nothing in /etc is edited. On the machines ward is built and tested on,
# podman needs three things a normal host does not:
#   runtime = "runc"             crun refuses a hybrid cgroup v1/v2 layout
#   cgroup_manager = "cgroupfs"  there is no systemd to ask for cgroups
#   default_ulimits at or below the hard limits of this shell: containers cannot raise them
#                                (root here lacks CAP_SYS_RESOURCE), and podman's defaults do
# and events go to a file (no journald). Usage: scripts/podman.sh ARGS... (as podman).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
conf="${WARD_CONTAINERS_CONF:-$root/target/podman/containers.conf}"
if [ ! -f "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
  cat > "$conf.tmp" <<CONF
# Written by scripts/podman.sh; delete it to write it again.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
  mv "$conf.tmp" "$conf"
fi
export CONTAINERS_CONF="$conf"
exec podman "$@"
