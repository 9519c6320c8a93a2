#!/usr/bin/env bash
# The whole test suite against real PostgreSQL and NATS: finds or starts both (NATS on a port of
# its own, 4334 by default, apart from `make dev`'s 4333, with throwaway data: every test makes
# streams in its own namespace), then runs every test of the workspace. Extra arguments go to
# cargo test.
#
# COVERAGE=1 runs the same suite once, instrumented, and enforces the coverage floors
# (scripts/coverage.sh): what CI does, so the suite is built and run once, not twice.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
use_pinned_rust
cd "$ROOT"
if [ "${COVERAGE:-}" = 1 ]; then
  COVERAGE='' exec bash scripts/coverage.sh "$@"
fi

nats_port=${TEST_NATS_PORT:-4334}
bash scripts/postgres.sh
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
NATS_FRESH=1 bash scripts/nats.sh start "$nats_port"
# shellcheck disable=SC2317 # called from the EXIT trap
stop_nats() { [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"; true; }
trap stop_nats EXIT

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/postgres}
export TEST_NATS_URL="nats://127.0.0.1:$nats_port"
# Fault tests run (and restart) NATS servers of their own.
NATS_SERVER_BIN=$(bash scripts/nats.sh bin)
export NATS_SERVER_BIN
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# promtool lints every service's /metrics exposition (tests/tests/services.rs).
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing promtool (Debian package prometheus)"
    { apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }; } >/dev/null 2>&1 \
      || log "could not install promtool; the exposition lint will be skipped"
  else
    log "promtool not found (apt install prometheus | brew install prometheus); the exposition lint will be skipped"
  fi
fi
command -v promtool >/dev/null && export REQUIRE_PROMTOOL=1
# Schemathesis fuzzes both APIs from their specs (tests/tests/api_fuzz.rs).
if bash scripts/tools.sh schemathesis >/dev/null 2>&1; then
  SCHEMATHESIS=$(bash scripts/tools.sh path schemathesis)
  export SCHEMATHESIS REQUIRE_SCHEMATHESIS=1
else
  log "could not install schemathesis; the API fuzz test will be skipped"
fi
# The docs UI is opened in Chromium (tests/tests/docs_ui.rs); installed where this machine can.
if bash scripts/tools.sh browser >/dev/null 2>&1; then
  export REQUIRE_BROWSER=1
else
  log "could not install Chromium or playwright-core; the docs-UI browser test will be skipped"
fi

out=$(mktemp)
trap 'stop_nats; rm -f "$out"' EXIT
# The end-to-end tests start the service binaries, which `cargo test` alone does not build.
cargo build --workspace --bins --locked
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1); if ($(i) ~ /^ignored/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
exit "$status"
