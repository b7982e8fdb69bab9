# Sourced by demo.sh, bench.sh and soak.sh: a scratch directory that is removed on exit
# together with every background process started into `pids`.
#   scratch NAME   creates it (mktemp -d -t NAME.XXXXXX), sets $work, cds into it
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
