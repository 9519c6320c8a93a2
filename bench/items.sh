#!/usr/bin/env bash
# The public item list against its baselines, in one run, on 100 000 items, at concurrency 32
# (release build, local PostgreSQL and NATS; prints figures, never fails on them):
#   hot   the same popular page again and again (answered from the replica's cache) vs pgbench
#         running that page's SQL: the cache's gain;
#   cold  a different min_price on every request (every request misses the cache and goes to
#         PostgreSQL) vs pgbench running the same SQL with the same random min_price;
#   304   the hot page revalidated with If-None-Match vs GET /health/live, the HTTP stack's
#         own ceiling on this machine.
#
#   bench/items.sh [SECONDS]    (default 10 per measurement)
#   BENCH_TSV=file              also append `name<TAB>per second<TAB>p99 ms<TAB>ratio` rows
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

seconds=${1:-10}
nats_port=${NATS_PORT:-4333}
# wrk, not hey: the load generator shares the 2 cores, and wrk needs a fraction of hey's CPU.
command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || die "wrk is needed (apt install wrk)"
command -v pgbench >/dev/null || die "pgbench is needed (Debian: part of postgresql-15)"

pg_args=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
psql_on() { psql "${pg_args[@]}" -d "$1" -qtAc "$2"; }
bash scripts/postgres.sh
psql_on postgres "DROP DATABASE IF EXISTS bench_items" >/dev/null 2>&1
psql_on postgres "CREATE DATABASE bench_items" >/dev/null
started_nats=0
port_open 127.0.0.1 "$nats_port" || started_nats=1
bash scripts/nats.sh start "$nats_port"

log "building release binaries"
cargo build --release --locked -q -p catalog-order
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export APP_ENV=test LOG_FORMAT=json RUST_LOG=warn NATS_URL="nats://127.0.0.1:$nats_port"
export NATS_NAMESPACE=bench_items HTTP_ADDR=127.0.0.1:18282 METRICS_ADDR=127.0.0.1:19282
export DATABASE_URL="postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/bench_items"
"$bin/catalog-order" migrate up >/dev/null

log "loading 100 000 items in 50 categories"
psql_on bench_items "
  INSERT INTO categories (id, name, slug)
  SELECT gen_random_uuid(), 'Category ' || n, 'category-' || n FROM generate_series(1, 50) n;
  INSERT INTO items (id, category_id, sku, name, description, price_cents, currency, stock, created_at)
  SELECT gen_random_uuid(), (SELECT id FROM categories ORDER BY slug OFFSET (n % 50) LIMIT 1),
         'SKU-' || n, 'Item ' || md5(n::text), 'words ' || md5((n * 7)::text),
         (n * 7919) % 100000, 'EUR', n % 17, now() - make_interval(secs => n)
  FROM generate_series(1, 100000) n;
  ANALYZE;" >/dev/null
category=$(psql_on bench_items "SELECT id FROM categories WHERE slug = 'category-7'")

"$bin/catalog-order" >/dev/null &
app_pid=$!
work=$(mktemp -d)
cleanup() {
  kill "$app_pid" 2>/dev/null || true
  wait "$app_pid" 2>/dev/null || true
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  psql_on postgres "DROP DATABASE IF EXISTS bench_items" >/dev/null 2>&1 || true
}
trap cleanup EXIT
base="http://$HTTP_ADDR"
until curl -fs -o /dev/null "$base/health/ready"; do sleep 0.1; done

# The statements the service runs for these requests (store/items.rs), LIMIT 20 + 1, with the
# category bound as a parameter as the service binds it (pgbench -M prepared binds :category).
cat >"$work/hot.sql" <<'SQL'
SELECT id, category_id, sku, name, description, price_cents, currency, stock, active, created_at, updated_at
FROM items WHERE active AND category_id = :category ORDER BY price_cents, id LIMIT 21;
SQL
cat >"$work/cold.sql" <<'SQL'
\set min_price random(0, 99999)
SELECT id, category_id, sku, name, description, price_cents, currency, stock, active, created_at, updated_at
FROM items WHERE active AND category_id = :category AND price_cents >= :min_price ORDER BY price_cents, id LIMIT 21;
SQL
# wrk: a different min_price on every request, as the cold SQL draws it.
cat >"$work/cold.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  return wrk.format(nil, wrk.path .. "&min_price=" .. math.random(0, 99999))
end
LUA

# CPU time of the whole machine (user + nice + system + irq + softirq), in clock ticks: both sides
# share the 2 cores, so CPU per operation explains the ratio.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
per_op_us() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }

# pgbench FILE: prints "tps p99_ms".
pgbench_run() {
  log "baseline: pgbench $(basename "$1"), 32 clients, ${seconds}s"
  rm -f "$work"/pgb.*
  (cd "$work" && pgbench "${pg_args[@]}" -n -M prepared -c 32 -j 2 -T "$seconds" -f "$1" -D "category=$category" \
    -l --log-prefix=pgb bench_items >"$work/pgbench.out" 2>&1)
  # Column 3 of pgbench's log is each transaction's latency in microseconds.
  printf '%s %s\n' "$(awk '/^tps = / { print $3 }' "$work/pgbench.out" | tail -n 1)" \
    "$(cat "$work"/pgb.* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int(NR * 0.99)] / 1000 }')"
}

# wrk LABEL URL [wrk args…]: prints "requests/s p99_ms µs_of_service_CPU_per_request
# answers_neither_2xx_nor_3xx".
wrk_run() {
  local url=$2 before ticks total
  log "service: $1, 32 connections, ${seconds}s"
  shift 2
  before=$(awk '{ print $14 + $15 }' "/proc/$app_pid/stat")
  wrk -t 2 -c 32 -d "${seconds}s" --latency "$@" "$url" >"$work/wrk.out"
  ticks=$(($(awk '{ print $14 + $15 }' "/proc/$app_pid/stat") - before))
  total=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
  # wrk prints "99%  12.34ms" (or us / s).
  printf '%s %s %s %s\n' "$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.out")" \
    "$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
      printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$work/wrk.out")" \
    "$(per_op_us "$ticks" "$total")" "$(awk '/Non-2xx or 3xx/ { print $NF }' "$work/wrk.out" | grep . || echo 0)"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

url="$base/v1/items?limit=20&category=$category&sort=price"
curl -fs -o /dev/null "$url"
etag=$(curl -fs -D - -o /dev/null "$url" | awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }')
[ -n "$etag" ] || die "the list answered without an ETag"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url")" = 304 ] || die "If-None-Match did not answer 304"

read -r pg_hot_tps pg_hot_p99 < <(pgbench_run "$work/hot.sql")
read -r pg_cold_tps pg_cold_p99 < <(pgbench_run "$work/cold.sql")
read -r live_rps live_p99 live_cpu live_bad < <(wrk_run "GET /health/live" "$base/health/live")
read -r hot_rps hot_p99 hot_cpu hot_bad < <(wrk_run "hot page" "$url")
read -r cold_rps cold_p99 cold_cpu cold_bad < <(wrk_run "random min_price" "$url" -s "$work/cold.lua")
read -r revalidated_rps revalidated_p99 revalidated_cpu revalidated_bad < <(wrk_run "If-None-Match" "$url" -H "If-None-Match: $etag")

hot_ratio=$(ratio "$hot_rps" "$pg_hot_tps")
cold_ratio=$(ratio "$cold_rps" "$pg_cold_tps")
revalidated_ratio=$(ratio "$revalidated_rps" "$live_rps")
printf '\n%-52s %11s %9s %9s %8s %s\n' "" "per second" "p99 (ms)" "µs CPU" "ratio" "goal"
printf '%-52s %11.0f %9s\n' "pgbench, the hot page's SQL" "$pg_hot_tps" "$pg_hot_p99"
printf '%-52s %11.0f %9s %9s %8s %s\n' "hot: the same page (cache hits)" "$hot_rps" "$hot_p99" "$hot_cpu" "$hot_ratio" ">= 2 × pgbench"
printf '%-52s %11.0f %9s\n' "pgbench, random min_price" "$pg_cold_tps" "$pg_cold_p99"
printf '%-52s %11.0f %9s %9s %8s %s\n' "cold: random min_price (every request misses)" "$cold_rps" "$cold_p99" "$cold_cpu" "$cold_ratio" ">= 0.4 × pgbench"
printf '%-52s %11.0f %9s %9s\n' "GET /health/live (the HTTP stack's ceiling)" "$live_rps" "$live_p99" "$live_cpu"
printf '%-52s %11.0f %9s %9s %8s %s\n' "304: the hot page revalidated (If-None-Match)" "$revalidated_rps" "$revalidated_p99" "$revalidated_cpu" "$revalidated_ratio" ">= 0.8 × /health/live"
printf 'answers neither 2xx nor 3xx: live %s, hot %s, cold %s, 304 %s\n' "$live_bad" "$hot_bad" "$cold_bad" "$revalidated_bad"
if [ -n "${BENCH_TSV:-}" ]; then
  {
    printf 'list hot\t%s\t%s\t%s\n' "$hot_rps" "$hot_p99" "$hot_ratio"
    printf 'list cold\t%s\t%s\t%s\n' "$cold_rps" "$cold_p99" "$cold_ratio"
    printf 'list 304\t%s\t%s\t%s\n' "$revalidated_rps" "$revalidated_p99" "$revalidated_ratio"
  } >>"$BENCH_TSV"
fi
