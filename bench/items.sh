#!/usr/bin/env bash
# The public item list against its baselines, in one run, on 100 000 items, at concurrency 32
# (release build, local PostgreSQL and NATS, catalog-order as the chart runs it: two replicas of
# one worker each, bench/lib.sh's bench_replicas; prints figures, never fails on them):
#   hot   the same popular page again and again (answered from the replica's cache) vs pgbench
#         running that page's SQL: the cache's gain;
#   cold  a different min_price on every request (every request misses the cache and goes to
#         PostgreSQL) vs pgbench running the same SQL with the same random min_price;
#   304   the hot page revalidated with If-None-Match vs GET /health/live, the HTTP stack's
#         own ceiling on this machine.
#
#   bench/items.sh [SECONDS]    (default 10 per measurement)
#   CONNECTIONS="1 8 32"        concurrencies to measure at (default 32)
#   BENCH_TSV=file              also append rows for bench/report.sh (bench/lib.sh, bench_tsv)
#   BENCH_REPLICAS=1 BENCH_WORKER_THREADS=0
#                               one process with a worker per core instead
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

seconds=${1:-10}
connections=${CONNECTIONS:-32}
nats_port=${NATS_PORT:-4333}

psql_on() { psql "${bench_pg_args[@]}" -d "$1" -qtAc "$2"; }
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
export NATS_NAMESPACE=bench_items
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

work=$(mktemp -d)
cleanup() {
  bench_stop
  [ "$started_nats" = 1 ] && bash scripts/nats.sh stop "$nats_port"
  rm -rf "$work"
  psql_on postgres "DROP DATABASE IF EXISTS bench_items" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_replicas "$bin/catalog-order" 18282
base="http://127.0.0.1:${bench_ports[0]}"

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

page="/v1/items?limit=20&category=$category&sort=price"
url="$base$page"
curl -fs -o /dev/null "$url"
etag=$(curl -fs -D - -o /dev/null "$url" | awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }')
[ -n "$etag" ] || die "the list answered without an ETag"
# Every replica must know the page by the same ETag, or half the revalidations would be 200s.
for port in "${bench_ports[@]}"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "http://127.0.0.1:$port$page")" = 304 ] \
    || die "If-None-Match did not answer 304 on the replica on $port"
done

row() { printf '%-48s %5s %11.0f %9s %9s %8s %8s %s\n' "$@"; }
printf '\n%-48s %5s %11s %9s %9s %8s %8s %s\n' "" "conns" "per second" "p50 (ms)" "p99 (ms)" "µs CPU" "ratio" "goal"
for c in $connections; do
  log "concurrency $c: pgbench ×2, wrk ×4, ${seconds}s each"
  read -r pg_hot_tps pg_hot_p50 pg_hot_p99 _ < <(bench_pgbench bench_items "$work/hot.sql" "$c" "$seconds" -D "category=$category")
  read -r pg_cold_tps pg_cold_p50 pg_cold_p99 _ < <(bench_pgbench bench_items "$work/cold.sql" "$c" "$seconds" -D "category=$category")
  read -r live_rps live_p50 live_p99 live_cpu live_bad < <(bench_wrk "$base/health/live" "$c" "$seconds")
  read -r hot_rps hot_p50 hot_p99 hot_cpu hot_bad < <(bench_wrk "$url" "$c" "$seconds")
  read -r cold_rps cold_p50 cold_p99 cold_cpu cold_bad < <(bench_wrk "$url" "$c" "$seconds" -s "$work/cold.lua")
  read -r rev_rps rev_p50 rev_p99 rev_cpu rev_bad < <(bench_wrk "$url" "$c" "$seconds" -H "If-None-Match: $etag")
  row "pgbench, the hot page's SQL" "$c" "$pg_hot_tps" "$pg_hot_p50" "$pg_hot_p99" "" "" ""
  row "hot: the same page (cache hits)" "$c" "$hot_rps" "$hot_p50" "$hot_p99" "$hot_cpu" "$(ratio "$hot_rps" "$pg_hot_tps")" ">= 2 × pgbench"
  row "pgbench, random min_price" "$c" "$pg_cold_tps" "$pg_cold_p50" "$pg_cold_p99" "" "" ""
  row "cold: random min_price (every request misses)" "$c" "$cold_rps" "$cold_p50" "$cold_p99" "$cold_cpu" "$(ratio "$cold_rps" "$pg_cold_tps")" ">= 0.4 × pgbench"
  row "GET /health/live (the HTTP stack's ceiling)" "$c" "$live_rps" "$live_p50" "$live_p99" "$live_cpu" "" ""
  row "304: the hot page revalidated (If-None-Match)" "$c" "$rev_rps" "$rev_p50" "$rev_p99" "$rev_cpu" "$(ratio "$rev_rps" "$live_rps")" ">= 0.8 × /health/live"
  [ "$live_bad$hot_bad$cold_bad$rev_bad" = 0000 ] \
    || printf 'answers neither 2xx nor 3xx: live %s, hot %s, cold %s, 304 %s\n' "$live_bad" "$hot_bad" "$cold_bad" "$rev_bad"
  bench_tsv "list, hot" "$c" "$hot_rps" "$hot_p50" "$hot_p99" "$pg_hot_tps"
  bench_tsv "pgbench, hot list SQL" "$c" "$pg_hot_tps" "$pg_hot_p50" "$pg_hot_p99" "$pg_hot_tps"
  bench_tsv "list, cold" "$c" "$cold_rps" "$cold_p50" "$cold_p99" "$pg_cold_tps"
  bench_tsv "pgbench, cold list SQL" "$c" "$pg_cold_tps" "$pg_cold_p50" "$pg_cold_p99" "$pg_cold_tps"
  bench_tsv "list, 304" "$c" "$rev_rps" "$rev_p50" "$rev_p99" "$live_rps"
  bench_tsv "/health/live" "$c" "$live_rps" "$live_p50" "$live_p99" "$live_rps"
done
