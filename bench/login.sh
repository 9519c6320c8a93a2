#!/usr/bin/env bash
# Login throughput at concurrency 32 against the raw argon2id verify rate with the same
# parameters on the same cores, measured in one run; and the p99 of GET /v1/auth/me while the
# login flood runs. Release build, local PostgreSQL and NATS. Prints figures; never fails on them.
#
#   bench/login.sh [SECONDS]    (default 15)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-15}
nats_port=${NATS_PORT:-4333}
memory=${ARGON2_MEMORY_KIB:-19456} iterations=${ARGON2_ITERATIONS:-2} parallelism=${ARGON2_PARALLELISM:-1}
for tool in hey wrk; do
  command -v "$tool" >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq "$tool" >/dev/null; } \
    || die "$tool is needed (apt install $tool)"
done

psql_admin() { psql -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -d postgres -qtAc "$1"; }
bash scripts/postgres.sh
psql_admin "DROP DATABASE IF EXISTS bench_login" >/dev/null
psql_admin "CREATE DATABASE bench_login" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p auth -p bench
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE=bench_login HTTP_ADDR=127.0.0.1:18181 METRICS_ADDR=127.0.0.1:19181
export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_login"
export ARGON2_MEMORY_KIB=$memory ARGON2_ITERATIONS=$iterations ARGON2_PARALLELISM=$parallelism
export RATE_LIMIT_AUTH_PER_MINUTE=100000000 RATE_LIMIT_AUTH_BURST=100000000
"$bin/auth" migrate up >/dev/null
"$bin/auth" >/dev/null &
auth_pid=$!
cleanup() {
  kill "$auth_pid" 2>/dev/null || true
  wait "$auth_pid" 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  psql_admin "DROP DATABASE IF EXISTS bench_login" >/dev/null || true
}
trap cleanup EXIT
base="http://$HTTP_ADDR"
until curl -fs -o /dev/null "$base/health/ready"; do sleep 0.1; done

body='{"email":"bench@example.com","password":"correct horse battery staple"}'
curl -fs -o /dev/null -XPOST "$base/v1/auth/register" -H 'content-type: application/json' -d "$body"
access=$(curl -fs -XPOST "$base/v1/auth/login" -H 'content-type: application/json' -d "$body" \
  | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

cores=$(nproc)
log "baseline: raw argon2id verify (m=$memory t=$iterations p=$parallelism) on $cores threads for ${seconds}s"
raw=$("$bin/argon2-rate" "$memory" "$iterations" "$parallelism" "$cores" "$seconds" | sed 's/.*=//')

log "login flood: 32 concurrent clients for ${seconds}s, GET /v1/auth/me alongside"
me_out=$(mktemp) login_out=$(mktemp) script=$(mktemp)
hey -z "${seconds}s" -c 2 -q 50 -H "Authorization: Bearer $access" "$base/v1/auth/me" >"$me_out" &
me_pid=$!
# wrk drives the flood: it needs far less CPU than hey, and CPU is what is being measured.
cat >"$script" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t 1 -c 32 -d "${seconds}s" -s "$script" "$base/v1/auth/login" >"$login_out"
wait "$me_pid"

logins=$(awk '/Requests\/sec/ { print $2 }' "$login_out")
login_errors=$(awk '/Non-2xx/ { print $5 }' "$login_out")
me_p99=$(awk '/ 99% in / { print $3 * 1000 }' "$me_out")
me_ok=$(awk '/\[200\]/ { print $2 }' "$me_out")
ratio=$(awk -v a="$logins" -v b="$raw" 'BEGIN { printf "%.2f", a / b }')
rm -f "$me_out" "$login_out" "$script"

printf '\n%-44s %12s\n' "measure" "value"
printf '%-44s %12s\n' "raw argon2id verifications/s ($cores threads)" "$raw"
printf '%-44s %12s\n' "logins/s at concurrency 32" "$logins"
printf '%-44s %12s\n' "ratio (goal >= 0.9)" "$ratio"
printf '%-44s %12s\n' "GET /v1/auth/me p99 during the flood (ms)" "$me_p99"
printf '%-44s %12s\n' "non-2xx logins / 200 answers to me" "${login_errors:-0} / ${me_ok:-0}"
