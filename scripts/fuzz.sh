#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target under fuzz/ for FUZZ_SECONDS each (default 60),
# starting from the committed seed corpus in fuzz/corpus/<target>. Installs the nightly
# toolchain and cargo-fuzz when missing. A crash stops the run with the input saved under
# fuzz/artifacts/<target>/; turn it into a regression test next to the code it broke.
# Not part of `make test` (it needs nightly and minutes of CPU).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
secs=${FUZZ_SECONDS:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cd "$root/fuzz"
cargo +nightly fuzz build -O
for target in $(cargo +nightly fuzz list); do
  echo "== $target: ${secs}s"
  # Runs grow a working corpus beside the seeds; only the seeds are committed.
  mkdir -p "corpus-run/$target"
  cargo +nightly fuzz run -O "$target" "corpus-run/$target" "corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|Done)' || true
  [ -z "$(ls -A "artifacts/$target" 2>/dev/null)" ] || {
    echo "fuzz target $target found a crash: fuzz/artifacts/$target/" >&2; exit 1; }
done
echo "fuzz: every target ran ${secs}s without a crash"
