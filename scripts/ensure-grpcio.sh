#!/usr/bin/env bash
# The Python gRPC client of the Workload API interop tests (gRPC C-core, as py-spiffe uses):
# grpcio and grpcio-tools from PyPI in a venv under target/, made when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/venv-grpc"
version=1.85.4
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import grpc, grpc_tools; assert grpc.__version__ == '$version'" 2>/dev/null; then
  exit 0
fi
# Debian's python3 needs python3-venv for ensurepip.
python3 -c 'import ensurepip' 2>/dev/null || bash "$root/scripts/ensure-tools.sh" python3-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio==$version" "grpcio-tools==$version"
echo "grpcio $version installed in $venv"
