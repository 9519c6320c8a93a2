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
