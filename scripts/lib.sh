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

# rust_pin: the Rust toolchain rust-toolchain.toml pins (its channel, e.g. 1.95.0).
rust_pin() { sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml"; }

# use_pinned_rust: cargo here runs the pinned Rust, and nothing is downloaded for it. rustup does
# not install a toolchain that the file names and that is missing (and cannot, offline); where
# only another name of that same release is installed (a machine with just `stable`), that one
# is used through RUSTUP_TOOLCHAIN. Any other compiler version is an error, not a fallback.
use_pinned_rust() {
  local pin toolchain
  pin=$(rust_pin)
  [ -n "$pin" ] || die "no channel in rust-toolchain.toml"
  command -v rustup >/dev/null || return 0
  if ! rustup toolchain list | grep -q "^$pin-"; then
    for toolchain in $(rustup toolchain list | cut -d' ' -f1); do
      if [ "$(RUSTUP_TOOLCHAIN=$toolchain rustc --version 2>/dev/null | cut -d' ' -f2)" = "$pin" ]; then
        export RUSTUP_TOOLCHAIN=$toolchain
        break
      fi
    done
  fi
  local have
  have=$(rustc --version 2>/dev/null | cut -d' ' -f2) || true
  [ "$have" = "$pin" ] \
    || die "rust-toolchain.toml pins Rust $pin, but rustc here is ${have:-missing} (rustup toolchain install $pin)"
}

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }

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

# dockerfile_env NAME: the value the Dockerfile's ENV gives NAME (quotes removed), so scripts
# build as the images do without a second copy of the settings.
dockerfile_env() {
  local value
  value=$(sed -n "s/.*[ \t]$1=\(\"[^\"]*\"\|[^ \t\\\\]*\).*/\1/p" "$ROOT/Dockerfile" | head -1 | tr -d '"')
  [ -n "$value" ] || die "the Dockerfile has no ENV $1"
  echo "$value"
}

# apt_install PACKAGE...: Debian packages a script needs, installed once (as root), the package
# lists refreshed only when the install fails without.
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "install $* (Debian/Ubuntu: apt-get install $*)"
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# need_nasm: nasm, as the Dockerfile installs it. libjpeg-turbo (mozjpeg-sys, the worker's
# thumbnails) assembles its x86 SIMD only when nasm is there as it builds, and cargo keeps a build
# made without it: without nasm the worker decodes JPEG in plain C, about a third slower. So when
# nasm arrives, the mozjpeg-sys built before it goes. Not root: a warning, and plain C.
need_nasm() {
  command -v nasm >/dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    warn "nasm is missing: the worker's JPEG decoding is built without its SIMD (apt install nasm)"
    return
  fi
  log "installing nasm (libjpeg-turbo's x86 SIMD, as the Dockerfile does)"
  apt_install nasm
  cargo clean -q --release -p mozjpeg-sys >&2
  cargo clean -q --release --target x86_64-unknown-linux-gnu -p mozjpeg-sys >&2
}

# release_binaries SERVICE...: the services' static release binaries, as the images hold them
# (glibc, crt-static: the Dockerfile's RUSTFLAGS); prints the folder they are in.
release_binaries() {
  local target=x86_64-unknown-linux-gnu rustflags
  rustflags=$(dockerfile_env RUSTFLAGS) || return
  need_nasm
  RUSTFLAGS="$rustflags" cargo build --release --locked --target "$target" "${@/#/--bin=}" >&2
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/$target/release"
}
