#!/usr/bin/env bash
# What the shared rate limit adds to a limited request, measured in one run against baselines:
#   - pgbench: the limiter's own statement (platform::ratelimit, GCRA upsert), alone;
#   - HTTP: POST /v1/auth/refresh (limited per client IP) against POST /v1/auth/logout (not
#     limited) with the same malformed token, so both do the same work (parse the JSON, refuse the
#     token with 401, no other query) and differ only by the limit's round trip.
# Clients come from 10 000 addresses (X-Forwarded-For behind a trusted 127.0.0.1), so the rows are
# mostly updated in place, as with real traffic. Release build, local PostgreSQL and NATS. Prints
# figures; never fails on them.
#
#   bench/ratelimit.sh [SECONDS]    (default 10)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-10}
nats_port=${NATS_PORT:-4333}
clients=10000
# wrk, not hey: the load generator shares the 2 cores, and wrk needs a fraction of hey's CPU.
command -v wrk >/dev/null || apt_install wrk
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
psql_on() { psql "${pg_args[@]}" -d "$1" -qtAc "$2"; }
bash scripts/postgres.sh
psql_on postgres "DROP DATABASE IF EXISTS bench_ratelimit" >/dev/null 2>&1
psql_on postgres "CREATE DATABASE bench_ratelimit" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p auth
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE=bench_ratelimit HTTP_ADDR=127.0.0.1:18183 METRICS_ADDR=127.0.0.1:19183
export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_ratelimit"
# A budget nobody exhausts: every request is decided by the database and let through.
export RATE_LIMIT_AUTH_PER_MINUTE=100000000 RATE_LIMIT_AUTH_BURST=100000000 TRUSTED_PROXIES=127.0.0.1/32
"$bin/auth" migrate up >/dev/null
"$bin/auth" >/dev/null &
app_pid=$!
work=$(mktemp -d)
cleanup() {
  kill "$app_pid" 2>/dev/null || true
  wait "$app_pid" 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  psql_on postgres "DROP DATABASE IF EXISTS bench_ratelimit" >/dev/null 2>&1 || true
}
trap cleanup EXIT
base="http://$HTTP_ADDR"
until curl -fs -o /dev/null "$base/health/ready"; do sleep 0.1; done

# The limiter's statement (libs/platform/src/ratelimit.rs, DECIDE) with the same parameters.
cat >"$work/decide.sql" <<SQL
\\set n random(1, $clients)
WITH allowed AS (
    INSERT INTO rate_limits AS t (key, tat) VALUES ('auth:10.0.' || :n, now() + 6e-7::float8 * interval '1 second')
    ON CONFLICT (key) DO UPDATE
        SET tat = greatest(t.tat, now()) + 6e-7::float8 * interval '1 second'
        WHERE greatest(t.tat, now()) + 6e-7::float8 * interval '1 second'
              <= now() + 60::float8 * interval '1 second'
    RETURNING 1
)
SELECT true AS allowed, 0::float8 AS ahead FROM allowed
UNION ALL
SELECT false, extract(epoch FROM tat - now())::float8 FROM rate_limits
WHERE key = 'auth:10.0.' || :n AND NOT EXISTS (SELECT 1 FROM allowed);
SQL
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"refresh_token":"not-a-token"}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  local n = math.random(1, $clients)
  wrk.headers["X-Forwarded-For"] = "10.0." .. math.floor(n / 256) .. "." .. (n % 256)
  return wrk.format()
end
LUA

# pgbench's per-transaction latency average, in µs.
pgbench_run() { # clients
  (cd "$work" && pgbench "${pg_args[@]}" -n -M prepared -c "$1" -j 1 -T "$seconds" -f decide.sql \
    bench_ratelimit 2>&1) | awk '/^tps = / { tps = $3 } /^latency average/ { lat = $4 * 1000 }
      END { printf "%.0f %.0f\n", tps, lat }'
}
# wrk's requests/s, average and p99 latency (µs).
wrk_run() { # path connections
  wrk -t 1 -c "$2" -d "${seconds}s" --latency -s "$work/post.lua" "$base$1" >"$work/wrk.out"
  awk 'function us(v,  u) { u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
         return v * (u == "ms" ? 1000 : u == "s" ? 1000000 : 1) }
       /^Requests\/sec/ { rps = $2 } $1 == "Latency" && avg == "" { avg = us($2) } $1 == "99%" { p99 = us($2) }
       END { printf "%.0f %.0f %.0f\n", rps, avg, p99 }' "$work/wrk.out"
}

log "warming up (the first request of each address inserts its row)"
wrk -t 1 -c 4 -d 3s -s "$work/post.lua" "$base/v1/auth/refresh" >/dev/null
log "baseline: pgbench of the limiter's statement, 1 and 16 clients, ${seconds}s each"
read -r pg1_tps pg1_lat <<<"$(pgbench_run 1)"
read -r pg16_tps pg16_lat <<<"$(pgbench_run 16)"
log "HTTP, 1 and 16 connections, ${seconds}s each: logout (not limited) and refresh (limited)"
read -r free1_rps free1_avg free1_p99 <<<"$(wrk_run /v1/auth/logout 1)"
read -r lim1_rps lim1_avg lim1_p99 <<<"$(wrk_run /v1/auth/refresh 1)"
read -r free16_rps free16_avg free16_p99 <<<"$(wrk_run /v1/auth/logout 16)"
read -r lim16_rps lim16_avg lim16_p99 <<<"$(wrk_run /v1/auth/refresh 16)"
refused=$(curl -fs "http://$METRICS_ADDR/metrics" | awk '/^rate_limited_total/ { print $2 }')
unavailable=$(curl -fs "http://$METRICS_ADDR/metrics" | awk '/^rate_limit_unavailable_total/ { print $2 }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-46s %10s %10s %10s\n' "" "per second" "avg (µs)" "p99 (µs)"
printf '%-46s %10s %10s %10s\n' "pgbench, limiter statement, 1 client" "$pg1_tps" "$pg1_lat" "-"
printf '%-46s %10s %10s %10s\n' "POST logout (not limited), 1 connection" "$free1_rps" "$free1_avg" "$free1_p99"
printf '%-46s %10s %10s %10s\n' "POST refresh (limited), 1 connection" "$lim1_rps" "$lim1_avg" "$lim1_p99"
printf '%-46s %10s %10s %10s\n' "pgbench, limiter statement, 16 clients" "$pg16_tps" "$pg16_lat" "-"
printf '%-46s %10s %10s %10s\n' "POST logout (not limited), 16 connections" "$free16_rps" "$free16_avg" "$free16_p99"
printf '%-46s %10s %10s %10s\n' "POST refresh (limited), 16 connections" "$lim16_rps" "$lim16_avg" "$lim16_p99"
printf '\nadded per limited request, 1 connection: %s µs (latency ratio limited/not %s)\n' \
  "$((lim1_avg - free1_avg))" "$(ratio "$lim1_avg" "$free1_avg")"
printf 'throughput ratio limited/not: %s at 1 connection, %s at 16\n' \
  "$(ratio "$lim1_rps" "$free1_rps")" "$(ratio "$lim16_rps" "$free16_rps")"
printf 'refused %s, let through unchecked %s (both should be 0)\n' "${refused:-?}" "${unavailable:-?}"
