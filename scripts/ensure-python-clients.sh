#!/usr/bin/env bash
# The Python clients of the interop tests, in a venv under target/, made when missing:
# grpcio and grpcio-tools (gRPC C-core, as py-spiffe uses) for the Workload API, and PyJWT
# with its crypto extra for the OIDC relying-party check that docs/operations.md shows.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/venv-python"
grpcio=1.85.4
pyjwt=2.10.1
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "
import grpc, grpc_tools, jwt, cryptography
assert grpc.__version__ == '$grpcio' and jwt.__version__ == '$pyjwt'" 2>/dev/null; then
  exit 0
fi
# Debian's python3 needs python3-venv for ensurepip.
python3 -c 'import ensurepip' 2>/dev/null || bash "$root/scripts/ensure-tools.sh" python3-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "grpcio==$grpcio" "grpcio-tools==$grpcio" "pyjwt[crypto]==$pyjwt"
echo "grpcio $grpcio and PyJWT $pyjwt installed in $venv"
