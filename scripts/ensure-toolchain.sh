#!/usr/bin/env bash
# Makes the toolchain rust-toolchain.toml pins available before anything runs cargo (the
# first step of `make tools`). Nothing to do when rustup already has it. A machine whose
# stable toolchain is exactly that release gets it linked under the pinned name, with no
# download; any other machine installs it with rustup (rustfmt and clippy included).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v rustup >/dev/null 2>&1 || exit 0   # a toolchain not managed by rustup: use it as is
want="$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)"
[ -n "$want" ] || { echo "rust-toolchain.toml names no channel" >&2; exit 1; }
if rustup toolchain list | grep -q "^$want"; then
  exit 0
fi
stable="$(rustc +stable --version 2>/dev/null | awk '{print $2}')" || stable=""
if [ "$stable" = "$want" ]; then
  # The same release under another name: point the pinned name at it, as rustup would lay
  # it out (`rustup toolchain link` refuses names that look like releases).
  host="$(rustc +stable -vV | sed -n 's/^host: //p')"
  toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
  echo "using the stable toolchain ($stable) as $want, the release rust-toolchain.toml pins" >&2
  ln -sfn "stable-$host" "$toolchains/$want-$host"
else
  echo "installing Rust $want (rust-toolchain.toml)" >&2
  rustup toolchain install "$want" --profile minimal --component rustfmt,clippy
fi
