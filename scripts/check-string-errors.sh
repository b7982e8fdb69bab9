#!/usr/bin/env bash
# Library code returns typed errors (thiserror), never `Result<_, String>`: a string cannot be
# matched, wrapped or given a wire code. The only exceptions are clap value parsers, where a
# String is what clap asks for; they are listed here by file and function. Signatures split
# over lines are joined first, so a line break does not hide one.
set -euo pipefail
cd "$(dirname "$0")/.."
allowed='^crates/ward-cli/src/log.rs: *fn parse_filter|^crates/ward-traffic/src/lib.rs: *pub fn parse_duration|^crates/ward-intercept/src/main.rs: *fn app_port'
found="$(find crates -path '*/src/*' -name '*.rs' -not -path '*/src/bin/*' -print0 |
  xargs -0 perl -0777 -ne '
    while (/^(\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?fn\s+[^{;]*?->\s*Result<[^{;]*?,\s*String\s*>)/mg) {
      my $sig = $1; $sig =~ s/\s+/ /g; print "$ARGV:$sig\n";
    }' | grep -Ev "$allowed" || true)"
if [ -n "$found" ]; then
  echo "library functions returning Result<_, String> (give them a typed error):" >&2
  echo "$found" >&2
  exit 1
fi
echo "string errors: none outside the clap value parsers"
