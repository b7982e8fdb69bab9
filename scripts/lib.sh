# Sourced by demo.sh, bench.sh and soak.sh: a scratch directory that is removed on exit
# together with every background process started into `pids`, and a free loopback port.
#   scratch NAME   creates it (mktemp -d -t NAME.XXXXXX), sets $work, cds into it
#   port           prints an unused 127.0.0.1 port
scratch() {
  work="$(mktemp -d -t "$1.XXXXXX")"
  pids=()
  trap cleanup EXIT
  cd "$work"
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
