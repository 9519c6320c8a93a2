# Shared helpers for scripts/*.sh (sourced, not run).
# shellcheck shell=bash

# Variables used by the scripts that source this file.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034
TOOLS="${STOREFRONT_TOOLS:-$ROOT/.tools}"
# shellcheck disable=SC2034
DATA="${STOREFRONT_DATA:-$ROOT/.data}"
# shellcheck disable=SC2034
NATS_SERVER_VERSION="2.15.1"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: is something listening?
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # HOST PORT SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}

# release_binaries SERVICE...: the services' static release binaries, as the images hold them
# (glibc, crt-static); prints the folder they are in.
release_binaries() {
  local target=x86_64-unknown-linux-gnu
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" \
    "${@/#/--bin=}" >&2
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/$target/release"
}
