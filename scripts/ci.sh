#!/usr/bin/env bash
# Every CI gate, in one place: `.ci/run` runs `all`, GitHub's workflow runs each part as a job,
# so the two never drift. Each gate fails the run on its own.
#
#   bash scripts/ci.sh [all|lint|deny|test|coverage|images|cross|rehearse]   (default all)
#
#   lint      shellcheck, actionlint, hadolint, docker-compose.yml, alerting rules (promtool check + test), doc links,
#             layers (scripts/check-layers.py), the TypeScript client compiled against openapi/*.json
#             (scripts/check-ts-client.sh), the Helm chart (scripts/check-chart.sh), secret scan,
#             cargo fmt --check, cargo clippy
#   deny      cargo deny: advisories (offline against ../shared/advisory-db when present),
#             licences, bans, sources
#   test      `make test`: the whole suite against real PostgreSQL and NATS (README's command)
#   coverage  the suite, instrumented; fails under the floor (scripts/coverage.sh); `all` runs the
#             suite once this way (COVERAGE=1 make test) instead of test + coverage
#   images    builds and runs the images (scripts/image.sh) where buildah and podman exist
#   cross     the images' arm64 binaries cross-compiled as the Dockerfile does, their embedded
#             crate lists checked, and the smoke test run against them under qemu (scripts/cross.sh)
#   rehearse  the production rehearsal (scripts/rehearse.sh, `make rehearse`) on the images' binaries
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TERM_COLOR=never
use_pinned_rust

gate() { printf '\n\033[1m--- %s\033[0m\n' "$*" >&2; }

lint() {
  gate "shellcheck"
  bash scripts/tools.sh shellcheck
  shellcheck scripts/*.sh bench/*.sh .ci/run
  gate "actionlint"
  bash scripts/tools.sh actionlint
  "$(bash scripts/tools.sh path actionlint)" -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
  if [ -f Dockerfile ]; then
    gate "hadolint"
    bash scripts/tools.sh hadolint
    "$(bash scripts/tools.sh path hadolint)" Dockerfile
  fi
  gate "docker-compose.yml (scripts/compose.sh config)"
  bash scripts/compose.sh config
  gate "one Rust pin (rust-toolchain.toml)"
  local pin docker_rust
  pin=$(rust_pin)
  docker_rust=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
  [ "$docker_rust" = "$pin" ] \
    || die "Dockerfile's RUST_VERSION is '$docker_rust', rust-toolchain.toml pins $pin: make them equal"
  if grep -nF -e "rust-toolchain@" -e "$pin" .github/workflows/*.yml; then
    die "a workflow names its own Rust toolchain: install the pinned one with 'rustup toolchain install'"
  fi
  gate "alerting rules (promtool)"
  bash scripts/tools.sh promtool
  bash scripts/check-rules.sh
  gate "docs (relative links and anchors)"
  bash scripts/check-docs.sh
  gate "layers (no import circles between a crate's modules; routes name no sqlx)"
  python3 scripts/check-layers.py --self-test
  python3 scripts/check-layers.py --routes
  gate "typescript client (openapi-typescript + tsc over openapi/*.json)"
  bash scripts/check-ts-client.sh
  gate "helm chart (lint, render, kubernetes-validate, policies)"
  bash scripts/check-chart.sh
  gate "secret scan"
  bash scripts/secret-scan.sh --self-test
  bash scripts/secret-scan.sh
  gate "cargo fmt --check"
  cargo fmt --all --check
  gate "cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
}

deny() {
  gate "cargo deny"
  bash scripts/tools.sh cargo-deny
  local deny_bin
  deny_bin=$(bash scripts/tools.sh path cargo-deny)
  # A RustSec snapshot for machines without network: ADVISORY_DB_SNAPSHOT, or the shared folder
  # beside the clone (or beside the main working copy, for clones made elsewhere).
  local snapshot="" candidate
  for candidate in "${ADVISORY_DB_SNAPSHOT:-}" "$ROOT/../shared/advisory-db" /work/shared/advisory-db; do
    if [ -n "$candidate" ] && [ -d "$candidate/crates" ]; then
      snapshot=$candidate
      break
    fi
  done
  if [ -n "$snapshot" ]; then
    # No network here: cargo-deny's git fetch of the advisory database is redirected to a local
    # git repository holding the snapshot.
    local db
    db=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the folder is this call's
    trap "rm -rf '$db'" RETURN
    cp -r "$snapshot/." "$db/"
    git -C "$db" init -q -b main
    git -C "$db" -c user.name=ci -c user.email=ci@localhost add -A
    git -C "$db" -c user.name=ci -c user.email=ci@localhost commit -qm snapshot
    printf '[url "file://%s"]\n\tinsteadOf = https://github.com/RustSec/advisory-db\n' "$db" >"$db.gitconfig"
    GIT_CONFIG_GLOBAL="$db.gitconfig" GIT_CONFIG_NOSYSTEM=1 \
      "$deny_bin" --log-level error check advisories bans licenses sources
    rm -f "$db.gitconfig"
  else
    "$deny_bin" --log-level error check advisories bans licenses sources
  fi
}

# The images need buildah and podman (no Docker engine here); GitHub builds them with docker.
# scripts/image.sh installs them where it can (root with apt); elsewhere the gate is skipped.
images() {
  if { command -v buildah && command -v podman; } >/dev/null \
    || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }; then
    gate "images (buildah + podman)"
    bash scripts/image.sh
  else
    log "buildah or podman missing and not installable here: image gate skipped (apt install buildah podman runc)"
  fi
}

cross() {
  gate "arm64 cross build (scripts/cross.sh)"
  bash scripts/cross.sh
}

case "${1:-all}" in
  lint) lint ;;
  deny) deny ;;
  test) gate "make test"; make test ;;
  coverage) gate "coverage"; bash scripts/coverage.sh ;;
  images) images ;;
  cross) cross ;;
  rehearse) gate "production rehearsal"; make rehearse ;;
  all)
    lint
    deny
    gate "make test, instrumented: coverage floors on the same run"
    COVERAGE=1 make test
    images
    cross
    gate "production rehearsal"
    make rehearse
    ;;
  *) die "usage: scripts/ci.sh [all|lint|deny|test|coverage|images|cross|rehearse]" ;;
esac
